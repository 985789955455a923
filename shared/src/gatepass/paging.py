"""Bounded limit/offset pagination for list routes.

A route takes :data:`Paging` and answers a :class:`Page`::

    @router.get("/inbox")
    async def inbox(db: DbSession, page: Paging) -> Page[MessageOut]:
        rows = (await db.scalars(page.window(select(Message).order_by(...)))).all()
        return Page.build([MessageOut.model_validate(row) for row in rows], page)

Both bounds are checked (422 beyond them): a client cannot ask for a million rows, nor make the
database skip a million. :meth:`PageRequest.window` fetches one row more than asked, so the page
knows whether another follows without counting the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_OFFSET", "Page", "PageRequest", "Paging"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 10_000

T = TypeVar("T")
SelectT = TypeVar("SelectT", bound=Select[Any])


@dataclass(frozen=True)
class PageRequest:
    """Which slice of a list the client asked for."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def window(self, statement: SelectT) -> SelectT:
        """``statement`` limited to this page, plus one row to tell whether more follow."""
        return statement.limit(self.limit + 1).offset(self.offset)


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> PageRequest:
    """The dependency: ``?limit=&offset=`` within bounds."""
    return PageRequest(limit, offset)


Paging = Annotated[PageRequest, Depends(page_request)]
"""The page a list route was asked for: ``async def route(page: Paging)``."""


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_offset`` is ``null`` on the last page (or past the bound)."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def build(cls, rows: Sequence[T], page: PageRequest, **fields: Any) -> Self:
        """The page from rows fetched through :meth:`PageRequest.window` (one too many).

        ``fields``: those a subclass adds (``class Mailbox(Page[MessageOut]): owner: str``).
        """
        following = page.offset + page.limit
        more = len(rows) > page.limit and following <= MAX_OFFSET
        return cls(
            items=list(rows[: page.limit]),
            limit=page.limit,
            offset=page.offset,
            next_offset=following if more else None,
            **fields,
        )
