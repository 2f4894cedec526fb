"""The web UI: server-rendered Jinja2 pages with a little htmx, served by the API process.

The pages follow the JSON API's rules and share its code paths (``services``).
"""

from fastapi import APIRouter

from api.web.pages import audit, auth, campaigns, reviews, runs, schedules, tasks
from api.web.render import STATIC_DIR

router = APIRouter()
# schedules before campaigns: /campaigns/schedules is not a campaign id.
for _page in (auth, tasks, reviews, schedules, campaigns, runs, audit):
    router.include_router(_page.router)

__all__ = ["STATIC_DIR", "router"]
