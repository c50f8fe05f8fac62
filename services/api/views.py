"""Views of stored rows."""

from typing import Any, TypeVar

from pydantic import BaseModel

View = TypeVar("View", bound=BaseModel)


def view_of(model: type[View], row: object, **fields: Any) -> View:
    """`model` of `row`: `fields` are the ones renamed or computed, every other field is the row's
    attribute of the same name."""
    same = {name: getattr(row, name) for name in model.model_fields if name not in fields}
    return model(**same, **fields)
