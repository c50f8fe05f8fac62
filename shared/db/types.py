"""Column types: enums stored as their string values (the CHECK constraints list the same values),
read back as the enum, so code never converts a status string by hand."""

from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=StrEnum)


class StringEnum(TypeDecorator[E], Generic[E]):
    impl = String
    cache_ok = True

    def __init__(self, enum_type: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.enum_type = enum_type

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_type(value)
