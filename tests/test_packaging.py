"""An installed (non-editable) offboard holds every module the worker and API import: a
top-level module missing from pyproject.toml works from a checkout and breaks in the image."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run from a checkout only, never imported by the product.
NOT_SHIPPED = {"bench", "tests", "deploy", "docs", "build", "dist"}


def test_every_top_level_module_and_package_is_packaged() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = set(setuptools["py-modules"])
    patterns = setuptools["packages"]["find"]["include"]

    missing_modules = {p.stem for p in ROOT.glob("*.py")} - modules
    packages = {
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in NOT_SHIPPED and not p.parent.name.startswith(".")
    }
    missing_packages = {
        name for name in packages if not any(fnmatch.fnmatch(name, pat) for pat in patterns)
    }

    assert missing_modules == set(), "add them to [tool.setuptools] py-modules"
    assert missing_packages == set(), "add them to [tool.setuptools.packages.find] include"
