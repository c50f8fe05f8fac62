"""A 500 logs where it happened, never what the failing code held (a circuit, a user's values)."""

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api.errors import install_error_handlers

CIRCUIT = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\n'


def test_a_server_error_logs_no_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        values = {"user": "1234", "instance": "5678", "circuit": CIRCUIT}
        raise RuntimeError(f"failed on {values}")

    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"errors": [{"code": 1000, "message": "An internal error occurred."}]}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "RuntimeError" in logged and "GET /boom" in logged and "in boom" in logged
    assert "OPENQASM" not in logged and "1234" not in logged and "5678" not in logged
    assert all(record.exc_info is None for record in caplog.records)


def test_a_value_the_database_cannot_store_is_a_400_from_the_driver_too() -> None:
    """Statements sent to asyncpg directly (shared/db/driver.py) raise asyncpg's own errors: a value
    the database refuses is still the backstop's 400, and a lost connection still a 503."""
    import asyncpg

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/too-long")
    async def too_long() -> None:
        raise asyncpg.exceptions.StringDataRightTruncationError(
            "value too long for type character varying(64)"
        )

    @app.get("/gone")
    async def gone() -> None:
        raise asyncpg.exceptions.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )

    with TestClient(app, raise_server_exceptions=False) as client:
        refused = client.get("/too-long")
        unavailable = client.get("/gone")
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == 1200
    assert "too long" in refused.json()["errors"][0]["message"]
    assert unavailable.status_code == 503 and unavailable.headers.get("Retry-After")
