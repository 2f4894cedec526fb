"""An installed (non-editable) offboard holds every module the worker and API import: a
top-level module missing from pyproject.toml works from a checkout and breaks in the image."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import re
import sys
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


def _requirement_name(spec: str) -> str:
    return re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports(package_dirs: list[Path]) -> set[str]:
    local = {p.stem for p in ROOT.iterdir()}
    found: set[str] = set()
    for directory in package_dirs:
        files = [directory] if directory.suffix == ".py" else directory.rglob("*.py")
        for path in files:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    roots = [alias.name.split(".")[0] for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    roots = [node.module.split(".")[0]]
                else:
                    continue
                found.update(
                    r for r in roots if r not in local and r not in sys.stdlib_module_names
                )
    return found


def _with_their_requirements(names: set[str]) -> set[str]:
    """The declared distributions and everything they require (extras included), installed."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend(_requirement_name(r) for r in requires)
    return seen


def test_every_third_party_import_of_shipped_code_is_a_declared_dependency() -> None:
    """A library the product imports that no declared dependency brings installs on a
    developer's machine by luck (a test tool pulled it in) and breaks a clean install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed_by_us = _with_their_requirements(
        {_requirement_name(spec) for spec in project["dependencies"]}
    )
    shipped = [
        p
        for p in ROOT.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists())
        and p.stem not in NOT_SHIPPED
        and not p.name.startswith(".")
    ]
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        module: distributions.get(module, ["(not installed)"])
        for module in _third_party_imports(shipped)
        if not {_requirement_name(d) for d in distributions.get(module, [])} & installed_by_us
    }
    assert undeclared == {}, "add them to [project] dependencies"
