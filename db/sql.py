"""SQL the ORM does not spell the same way on every backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import literal


class JsonListHas(ColumnElement[bool]):
    """True when a JSON list column holds ``value``, compared case-insensitively.

    SQLite reads the list with ``json_each``, PostgreSQL with ``json_array_elements_text``;
    either way the test runs in the database, so it can filter before LIMIT/OFFSET.
    """

    type = Boolean()
    inherit_cache = True

    def __init__(self, column: Any, value: str) -> None:
        self.column = column
        self.value = literal(value.lower())


@compiles(JsonListHas, "postgresql")
def _postgresql(element: JsonListHas, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    value = compiler.process(element.value, **kw)
    # Both parts are compiled SQL (a column, a bound parameter), never caller text.
    sql = (
        "EXISTS (SELECT 1 FROM json_array_elements_text({}) AS member(value) "
        "WHERE lower(member.value) = {})"
    )
    return sql.format(column, value)


@compiles(JsonListHas)
def _sqlite(element: JsonListHas, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    value = compiler.process(element.value, **kw)
    sql = "EXISTS (SELECT 1 FROM json_each({}) AS member WHERE lower(member.value) = {})"
    return sql.format(column, value)
