"""Column constructors for the revision files in versions/.

FROZEN: revisions that databases have already run import these, so what a function builds must never
change (a changed default would make an old revision create a different table on a new database than
it did on an existing one). When a new revision needs another column, add a new function here (or
write the column out); never edit one in place.

Every column is NOT NULL unless it is given `nullable=True` (`moment` columns are NULL until set); other options (`primary_key`, `unique`,
`server_default`, `autoincrement`) and constraints (`sa.ForeignKey(...)`) pass through to `sa.Column`.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def column(
    name: str, type_: Any, *constraints: Any, nullable: bool = False, **options: Any
) -> sa.Column[Any]:
    return sa.Column(name, type_, *constraints, nullable=nullable, **options)


def string(name: str, length: int, *constraints: Any, **options: Any) -> sa.Column[Any]:
    return column(name, sa.String(length=length), *constraints, **options)


def text(name: str, **options: Any) -> sa.Column[Any]:
    return column(name, sa.Text(), **options)


def integer(name: str, **options: Any) -> sa.Column[Any]:
    return column(name, sa.Integer(), **options)


def big_integer(name: str, *constraints: Any, **options: Any) -> sa.Column[Any]:
    return column(name, sa.BigInteger(), *constraints, **options)


def double(name: str, **options: Any) -> sa.Column[Any]:
    return column(name, sa.Double(), **options)


def boolean(name: str, **options: Any) -> sa.Column[Any]:
    return column(name, sa.Boolean(), **options)


def uuid(name: str, **options: Any) -> sa.Column[Any]:
    return column(name, sa.UUID(), **options)


def jsonb(name: str, **options: Any) -> sa.Column[Any]:
    """JSONB as Alembic's autogenerate wrote it in the first revisions (`astext_type` is the
    Python-side type of `->>`; the database column is the same as `postgresql.JSONB()`)."""
    return column(name, postgresql.JSONB(astext_type=sa.Text()), **options)


def json(name: str, **options: Any) -> sa.Column[Any]:
    return column(name, sa.JSON(), **options)


def moment(name: str) -> sa.Column[Any]:
    """When something happened (started, closed, revoked...): a timestamp with time zone, NULL until
    it has happened."""
    return column(name, sa.DateTime(timezone=True), nullable=True)


def moment_now(name: str) -> sa.Column[Any]:
    """When a row was added (or last changed): a NOT NULL timestamp with time zone that the database
    sets to now()."""
    return column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"))
