"""``limit`` / ``cursor`` query parameters and the ``Link`` / ``X-Next-Cursor`` headers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response

from pie.core.pagination import MAX_LIMIT, Page, PageRequest, decode_cursor


async def _page_request(
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="Opaque cursor from a previous page's `X-Next-Cursor`."),
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageDep = Annotated[PageRequest, Depends(_page_request)]
"""Page request of a documented list route: every row unless ``limit`` is given."""


def set_page_headers(request: Request, response: Response, page: Page[Any]) -> None:
    if page.next_cursor is None:
        return
    url = request.url.include_query_params(cursor=page.next_cursor)
    response.headers["Link"] = f'<{url}>; rel="next"'
    response.headers["X-Next-Cursor"] = page.next_cursor


PAGE_HEADERS: dict[str, Any] = {
    "Link": {
        "description": 'Next page: `<url>; rel="next"` (only when more rows exist).',
        "schema": {"type": "string"},
    },
    "X-Next-Cursor": {
        "description": "Cursor of the next page (only when more rows exist).",
        "schema": {"type": "string"},
    },
}
