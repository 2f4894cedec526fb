"""The console script's entry point, ``offboard`` (the tree is assembled in ``cli.app``)."""

from cli.app import app

__all__ = ["app"]
