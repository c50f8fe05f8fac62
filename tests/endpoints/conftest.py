"""The api in-process: the real FastAPI app (routers, middleware, error handlers, services) driven through
httpx's ASGI transport, its sessionmaker bound to the test's rolled-back transaction.

The lifespan is not run (ASGITransport does not start it), so no outbox relay connects to a broker:
the context it would build is built by `services.api.app.build_context` over the test's sessions."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.app import build_context, create_app
from services.api.programs.pool import ParsePool
from shared.db.models import Instance, InstanceMember, Job, OutboxMessage, User
from shared.kit.settings import Settings
from tests.inprocess import add_instance, add_key, add_user
from tests.stack import TEST_JWT_SECRET

MAX_REQUEST_BYTES = 1024 * 1024


@pytest.fixture
def api_settings(migrated_database_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=migrated_database_url,
        jwt_secret=TEST_JWT_SECRET,
        secrets_key="test-encryption-key-of-the-in-process-suite-0123",
        backends=["aer_simulator", "fake_manila"],
        max_request_bytes=MAX_REQUEST_BYTES,
        max_shots=100_000,
        max_circuits=5,
        # Small, so the decompression-bomb refusal is quick to reach.
        max_decoded_bytes=16 * 1024 * 1024,
        namespace="qrt-ep-unused",
        # Every request authenticates afresh, so a revocation shows on the next request.
        auth_cache_seconds=0,
    )


@pytest.fixture(scope="session")
async def parse_pool() -> AsyncIterator[ParsePool]:
    """The api's parse workers, started once for the run (each forks from a server that imported
    qiskit, which takes seconds)."""
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    pool = ParsePool(defaults.parse_workers, defaults.parse_timeout_seconds, defaults.parse_memory_mb)
    pool.start()
    await pool.wait_ready()
    yield pool
    await pool.close()


@pytest.fixture
def app(
    api_settings: Settings,
    db_engine: AsyncEngine,
    db_factory: async_sessionmaker[AsyncSession],
    parse_pool: ParsePool,
) -> FastAPI:
    application = create_app(api_settings)
    application.state.context = build_context(api_settings, db_engine, db_factory, parse_pool)
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://qruntime.test") as http:
        yield http


@dataclass
class Caller:
    user: User
    api_key: str
    instance: Instance | None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"apikey {self.api_key}"}
        if self.instance is not None:
            headers["Service-CRN"] = self.instance.crn
        return headers


@dataclass
class People:
    alice: Caller  # a user of lab-a
    bob: Caller  # a user of lab-b
    admin: Caller  # an administrator (member of no instance)
    loner: Caller  # a user of no instance


@pytest.fixture
async def people(db: AsyncSession) -> People:
    async def caller(role: str = "user", instance: Instance | None = None) -> Caller:
        user = await add_user(db, role=role)
        _, plain = await add_key(db, user)
        if instance is not None:
            await add_instance_member(db, instance, user)
        return Caller(user, plain, instance)

    lab_a, lab_b = await add_instance(db), await add_instance(db)
    people = People(
        alice=await caller(instance=lab_a),
        bob=await caller(instance=lab_b),
        admin=await caller(role="admin"),
        loner=await caller(),
    )
    await db.commit()
    return people


async def add_instance_member(db: AsyncSession, instance: Instance, user: User) -> None:
    db.add(InstanceMember(instance_id=instance.id, user_id=user.id))
    await db.flush()


def refusal(response: httpx.Response, status: int, code: int, words: str = "") -> dict[str, Any]:
    """Assert the one error shape: `{"errors": [{code, message}]}` with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert set(error) == {"code", "message"} and error["code"] == code, body
    assert words in error["message"], error["message"]
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


async def written(db: AsyncSession) -> tuple[int, int]:
    """(jobs, outbox rows): refusals must write neither."""
    jobs = await db.scalar(select(func.count()).select_from(Job))
    outbox = await db.scalar(select(func.count()).select_from(OutboxMessage))
    return int(jobs or 0), int(outbox or 0)
