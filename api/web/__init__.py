"""The web UI: server-rendered Jinja2 pages with a little htmx, served by the API process."""

from api.web.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
