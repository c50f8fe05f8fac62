"""Time arithmetic done by the database, so every process reads one clock."""

from typing import Any

from sqlalchemy import func, text


def seconds_ago(seconds: float) -> Any:
    """now() minus `seconds`."""
    return text("now() - make_interval(secs => :seconds_ago)").bindparams(seconds_ago=seconds)


def interval_seconds(column: Any) -> Any:
    """An interval of `column` seconds (a column or expression holding a number)."""
    return func.make_interval(0, 0, 0, 0, 0, 0, column)
