"""``gatepass.paging``: one row more than asked tells whether another page follows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, column, select, table

from gatepass.paging import MAX_OFFSET, Page, PageRequest


class Named(Page[str]):
    owner: str


def test_a_full_window_means_another_page() -> None:
    page = Page.build(["a", "b", "c"], PageRequest(limit=2, offset=4))
    assert (page.items, page.next_offset) == (["a", "b"], 6)


def test_a_short_window_is_the_last_page() -> None:
    page = Page.build(["a", "b"], PageRequest(limit=2))
    assert (page.items, page.offset, page.next_offset) == (["a", "b"], 0, None)
    assert Page.build([], PageRequest()).next_offset is None


def test_no_next_page_beyond_the_offset_bound() -> None:
    page = Page.build(["a", "b"], PageRequest(limit=1, offset=MAX_OFFSET))
    assert page.next_offset is None


def test_subclasses_add_fields() -> None:
    page = Named.build(["a"], PageRequest(), owner="usr_1")
    assert page.model_dump() == {
        "items": ["a"],
        "limit": 20,
        "offset": 0,
        "next_offset": None,
        "owner": "usr_1",
    }


def test_the_window_asks_for_one_row_more() -> None:
    query: Select[tuple[Any]] = select(column("id")).select_from(table("t"))
    statement = PageRequest(limit=10, offset=30).window(query)
    compiled = statement.compile(compile_kwargs={"literal_binds": True})
    assert "LIMIT 11 OFFSET 30" in str(compiled)
