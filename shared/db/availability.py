"""Telling "the database is away" (restarting, unreachable, out of connections) from a real error.

During a PostgreSQL restart asyncpg raises connection errors (SQLSTATE class 08), administrator
shutdown (57P01-57P03, "the database system is shutting down / starting up"), or plain OSErrors; the
SQLAlchemy wrappers vary (OperationalError, InterfaceError, or a bare DBAPIError). Callers answer all
of them the same way: a retryable 503, never a 500.
"""

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03", "53300", "53400")


def database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.CannotConnectNowError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.TooManyConnectionsError
            | OSError,
        ):
            return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in UNAVAILABLE_SQLSTATES):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
