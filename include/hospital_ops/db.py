"""Typed helpers over psycopg2's cursors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as PgCursor


class NoRowError(LookupError):
    """A query that always returns a row returned none."""


def fetch_one(cur: PgCursor) -> tuple[Any, ...]:
    """The row of a query that always returns one (an aggregate, `select exists (...)`, a function's result),
    or a NoRowError naming the query."""
    row = cur.fetchone()
    if row is None:
        query = (cur.query or b"").decode(errors="replace")
        raise NoRowError(f"the query returned no row: {query[:300]}")
    return row
