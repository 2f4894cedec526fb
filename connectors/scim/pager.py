"""Listing every resource of a SCIM query, or failing loudly: never a silent short listing.

Servers in the field cap ``count`` without saying so, report ``totalResults`` as the size of
the current page (or half the truth), answer one empty page before the end, or ignore
``startIndex`` and repeat a page. The pager (RFC 7644 3.4.2.4) therefore:

- advances ``startIndex`` by what was actually received;
- learns the server's real page size from a short page that was not the last one, and keeps
  asking while pages come back full (so a ``totalResults`` equal to one page cannot end it);
- re-asks an empty page once before concluding the listing is over;
- ends on a short page once it holds at least ``totalResults`` resources
  (``pagination: defensive`` ignores ``totalResults`` and reads until an empty page);
- raises ``ProtocolError`` when the listing ends with fewer resources than the app reported,
  when a page repeats while more were reported, or after ``max_pages`` pages.

What it collected and what the app reported stay on ``Listing`` as evidence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from config import ScimSettings
from connectors.base import ProtocolError
from connectors.scim.transport import ScimTransport


@dataclass
class Listing:
    """One listing's evidence: the query, how many resources came, how many the app reported."""

    query: str
    collected: int = 0
    reported: int | None = None
    pages: int = 0


class Pager:
    """``async for resource in Pager(transport, "/Users", {...})``, then read ``.listing``."""

    def __init__(self, transport: ScimTransport, path: str, params: dict[str, Any]) -> None:
        self._transport = transport
        self._settings: ScimSettings = transport.settings
        self._path = path
        self._params = params
        query = urlencode(params)
        self.listing = Listing(query=f"GET {path}" + (f"?{query}" if query else ""))

    def _incomplete(self, why: str) -> ProtocolError:
        listing = self.listing
        return ProtocolError(
            f"{self._transport.app_id}: {listing.query}: {why}; collected {listing.collected} "
            f"of the {listing.reported} the app reported: refusing to treat it as complete"
        )

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        seen: set[str] = set()
        start = 1
        asked_again = False
        size = self._settings.page_size
        page_cap = size
        listing = self.listing
        for _ in range(self._settings.max_pages):
            _, page = await self._transport.read(
                self._path, {**self._params, "startIndex": start, "count": size}
            )
            assert page is not None
            listing.pages += 1
            total = page.get("totalResults")
            if isinstance(total, int) and not isinstance(total, bool):
                listing.reported = max(listing.reported or 0, total)
            resources = [r for r in page.get("Resources") or [] if isinstance(r, dict)]
            if not resources:
                if start == 1 or asked_again:
                    break
                asked_again = True
                continue
            asked_again = False
            fresh = [r for r in resources if str(r.get("id")) not in seen]
            if not fresh:
                if listing.reported is not None and len(seen) < listing.reported:
                    raise self._incomplete("the app repeated a page")
                break
            for resource in fresh:
                seen.add(str(resource.get("id")))
                listing.collected += 1
                yield resource
            start += len(resources)
            if len(resources) < page_cap:
                reported = listing.reported
                if self._settings.pagination == "standard" and (
                    reported is None or len(seen) >= reported
                ):
                    break
                # Short but not the end: the server's real page size.
                page_cap = len(resources)
        else:
            raise ProtocolError(
                f"{self._transport.app_id}: GET {self._path}: the listing did not end after "
                f"{self._settings.max_pages} pages (max_pages); refusing to guess the rest"
            )
        if listing.reported is not None and listing.collected < listing.reported:
            raise self._incomplete("the listing ended early")
