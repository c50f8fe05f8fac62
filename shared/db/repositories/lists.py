"""A list of values as one array parameter.

`column = ANY($1)` has the same SQL text for any number of values, so each connection prepares it
once; `column IN ($1, ..., $n)` is a new statement for every length, prepared and cached per
connection again and again (the hot paths take lists of 1 to 200 ids)."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, any_, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine


def any_of(column: Any, values: Sequence[Any], item_type: TypeEngine[Any]) -> ColumnElement[bool]:
    """`column = ANY(values)`: true for the rows whose `column` is one of `values`."""
    return column == any_(literal(list(values), ARRAY(item_type)))  # type: ignore[no-any-return]
