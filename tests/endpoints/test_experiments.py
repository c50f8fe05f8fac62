"""/api/v1/experiments/ in-process: the store's calls, transactions, and every documented refusal.

The service runs each call in a SERIALIZABLE transaction. Inside the test's rolled-back transaction the
isolation level cannot change, so the test's connection is opened SERIALIZABLE and the sessions the
service gets leave the (already honoured) request for it out."""

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from tests.endpoints.conftest import refusal as refused
from tests.endpoints.conftest import written

API = "/api/v1/experiments/"
RX_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[1] q;
bit[1] c;
rx(theta) q[0];
c[0] = measure q[0];
"""


class _InTestTransaction(AsyncSession):
    async def connection(self, bind_arguments=None, execution_options=None, **kw):  # type: ignore[no-untyped-def]
        options = {k: v for k, v in (execution_options or {}).items() if k != "isolation_level"}
        return await super().connection(
            bind_arguments=bind_arguments, execution_options=options or None, **kw
        )


@pytest.fixture
async def db_connection(db_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with db_engine.connect() as connection:
        await connection.execution_options(isolation_level="SERIALIZABLE")
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def db_factory(db_connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=db_connection,
        class_=_InTestTransaction,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )


def scan(num: int = 5, **extra: Any) -> dict[str, Any]:
    linspace = {"variable": "theta", "start": "0", "stop": "pi", "num": num, "steps": [{"execute": {}}]}
    return {
        "backend": "aer_simulator",
        "program": "sampler",
        "circuit": RX_QASM3,
        "shots": 100,
        "iteration": {"steps": [{"linspace": linspace}]},
        **extra,
    }


async def test_the_calls_run_serializable(db):
    assert (await db.execute(text("SHOW transaction_isolation"))).scalar() == "serializable"


async def test_paths_tree_and_their_refusals(client, people):
    h = people.alice.headers
    created = await client.put(f"{API}paths/lab/rabi", headers=h)
    assert created.status_code == 201 and created.json()["new"] == ["/lab", "/lab/rabi"]
    assert (await client.put(f"{API}paths/lab/rabi", headers=h)).status_code == 200
    root = (await client.get(f"{API}paths/", headers=h)).json()
    assert root["path"] == "/" and len(root["children"]) == 1, root
    assert [p["path"] for p in (await client.get(f"{API}tree", headers=h)).json()["paths"]] == [
        "/lab",
        "/lab/rabi",
    ]
    assert [p["path"] for p in (await client.get(f"{API}tree/lab/rabi", headers=h)).json()["paths"]] == [
        "/lab/rabi"
    ]
    refused(await client.get(f"{API}paths/nowhere", headers=h), 404, 3451)
    refused(await client.put(f"{API}paths/bad name!", headers=h), 400, 1255)
    # `points` and `events` cannot name a path: they would make GET ambiguous.
    refused(await client.put(f"{API}paths/lab/points", headers=h), 400, 1255, "points")
    refused(await client.put(f"{API}sequences/lab/events", json=scan(), headers=h), 400, 1255, "events")
    refused(await client.delete(f"{API}paths/", headers=h), 400, 1255, "root")
    refused(await client.post(f"{API}paths/lab/move", json={"to": "/lab/rabi/in"}, headers=h), 400, 1255)
    refused(await client.post(f"{API}paths/lab/rabi/move", json={"to": "/lab"}, headers=h), 409, 3452)
    refused(await client.post(f"{API}paths/nowhere/move", json={"to": "/b"}, headers=h), 404, 3451)
    moved = await client.post(f"{API}paths/lab/move", json={"to": "/lab2"}, headers=h)
    assert moved.status_code == 200, moved.text
    assert [p["path"] for p in (await client.get(f"{API}tree", headers=h)).json()["paths"]] == [
        "/lab2",
        "/lab2/rabi",
    ]
    refused(await client.get(f"{API}nothing-here", headers=h), 404, 3404)
    # Bob's instance has its own tree: Alice's paths are not found there.
    refused(await client.get(f"{API}paths/lab2", headers=people.bob.headers), 404, 3451)
    assert (await client.delete(f"{API}paths/lab2", headers=h)).status_code == 204
    refused(await client.get(f"{API}paths/lab2/rabi", headers=h), 404, 3451)


async def test_a_caller_must_name_one_instance(client, people):
    refused(await client.get(f"{API}tree", headers=people.loner.headers), 400, 1200, "Service-CRN")


async def test_deleting_paths_that_hold_sequences(client, people):
    h = people.alice.headers
    assert (await client.put(f"{API}sequences/lab/s", json=scan(), headers=h)).status_code == 201
    refused(await client.delete(f"{API}paths/lab", headers=h), 409, 3457)
    refused(await client.put(f"{API}paths/lab/s/child", headers=h), 409, 3461)
    refused(await client.put(f"{API}sequences/lab/s/child", json=scan(), headers=h), 409, 3461)
    refused(await client.put(f"{API}sequences/lab", json=scan(), headers=h), 409, 3452)
    assert (await client.delete(f"{API}paths/lab?delete_sequences=true", headers=h)).status_code == 204
    refused(await client.get(f"{API}sequences/lab/s", headers=h), 404, 3453)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"backend": "ibm_nowhere"}, 1007),
        ({"circuit": "OPENQASM 2.0; qreg"}, 1201),
        ({"shots": 10**9}, 6001),
        ({"program": "estimate"}, 1200),
        ({"iteration": {"steps": [{"loop": {}}]}}, 1252),
    ],
)
async def test_bad_definitions_write_nothing(client, people, db, change, code):
    h = people.alice.headers
    refused(await client.put(f"{API}sequences/lab/bad", json=scan(**change), headers=h), 400, code)
    refused(await client.get(f"{API}paths/lab", headers=h), 404, 3451)
    assert await written(db) == (0, 0)


async def test_a_sequence_from_draft_to_running_to_interrupted_and_back(client, people, db):
    h = people.alice.headers
    url = f"{API}sequences/lab/rabi"
    created = await client.put(url, json=scan(), headers=h)
    assert created.status_code == 201, created.text
    assert created.json()["state"].lower() == "draft"
    patched = await client.patch(url, json={"shots": 200}, headers=h)
    assert patched.status_code == 200 and patched.json()["shots"] == 200
    refused(await client.post(f"{url}/interrupt", headers=h), 409, 3455)
    refused(await client.post(f"{url}/reset", headers=h), 409, 3455)
    listed = (await client.get(f"{API}sequences?state=draft", headers=h)).json()
    assert listed["count"] == 1
    refused(await client.get(f"{API}sequences?state=sleeping", headers=h), 400, 1200)
    refused(await client.get(f"{API}sequences?limit=0", headers=h), 400, 1200, "limit")

    launched = await client.post(f"{url}/launch", headers=h)
    assert launched.status_code == 200, launched.text
    view = launched.json()
    assert view["state"].lower() == "running" and view["points"]["expected"] == 5 and view["jobs"]
    jobs_before, _ = await written(db)
    assert jobs_before == len(view["jobs"])
    # Only a draft is edited or launched; a running sequence's path stays where it is.
    refused(await client.patch(url, json={"shots": 300}, headers=h), 409, 3454)
    refused(await client.put(url, json=scan(), headers=h), 409, 3454)
    refused(await client.post(f"{url}/launch", headers=h), 409, 3455)
    refused(await client.delete(f"{API}paths/lab?delete_sequences=true", headers=h), 409, 3458)
    refused(await client.post(f"{API}paths/lab/move", json={"to": "/elsewhere"}, headers=h), 409, 3458)
    points = await client.get(f"{url}/points?limit=10", headers=h)
    assert points.status_code == 200 and points.json()["points"] == []  # none has its data yet
    refused(await client.get(f"{url}/points?limit=10001", headers=h), 400, 1200, "limit")

    interrupted = await client.post(f"{url}/interrupt", headers=h)
    assert interrupted.status_code == 200 and interrupted.json()["state"].lower() == "interrupted"
    for job_id in [j["id"] if isinstance(j, dict) else j for j in view["jobs"]]:
        job = await client.get(f"/api/v1/jobs/{job_id}", headers=h)
        assert job.json()["status"] == "Cancelled", job.text
    reset = await client.post(f"{url}/reset", headers=h)
    assert reset.status_code == 200 and reset.json()["state"].lower() == "draft"

    duplicate = await client.post(f"{url}/duplicate", json={"to": "/lab/copy"}, headers=h)
    assert duplicate.status_code in (200, 201) and duplicate.json()["state"].lower() == "draft"
    refused(await client.post(f"{url}/duplicate", json={"to": "/lab/copy"}, headers=h), 409, 3452)
    refused(await client.get(f"{API}sequences/lab/missing", headers=h), 404, 3453)
    refused(await client.get(f"{API}sequences/lab/missing/events", headers=h), 404, 3453)
    refused(await client.post(f"{API}sequences/lab/missing/launch", headers=h), 404, 3453)
    # Another instance's sequence is the same 404 as a missing one.
    refused(await client.get(url, headers=people.bob.headers), 404, 3453)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"iteration": {"steps": [{"execute": {}}]}}, 1253),
        (
            {"iteration": {"steps": [{"declare": {"variable": "theta", "value": "1 / 0"}}, {"execute": {}}]}},
            1251,
        ),
        (
            {
                "iteration": {
                    "steps": [
                        {
                            "arange": {
                                "variable": "theta",
                                "start": "0",
                                "stop": "1e9",
                                "step": "1",
                                "steps": [{"execute": {}}],
                            }
                        }
                    ]
                }
            },
            1254,
        ),
        ({"device_configuration": "absent"}, 3459),
    ],
)
async def test_launch_refusals_leave_a_draft_and_write_nothing(client, people, db, change, code):
    h = people.alice.headers
    assert (await client.put(f"{API}sequences/lab/s", json=scan(**change), headers=h)).status_code == 201
    before = await written(db)
    response = await client.post(f"{API}sequences/lab/s/launch", headers=h)
    assert response.status_code in (400, 404), response.text
    refused(response, response.status_code, code)
    assert await written(db) == before
    assert (await client.get(f"{API}sequences/lab/s", headers=h)).json()["state"].lower() == "draft"


async def test_a_launch_beyond_the_concurrent_jobs_limit_crashes(client, people, db):
    h = people.alice.headers
    people.alice.instance.max_concurrent_jobs = 0
    await db.commit()
    assert (await client.put(f"{API}sequences/lab/s", json=scan(), headers=h)).status_code == 201
    crashed = (await client.post(f"{API}sequences/lab/s/launch", headers=h)).json()
    assert crashed["state"].lower() == "crashed" and crashed["reason_code"] == 1012
    assert (await written(db))[0] == 0


async def test_circuits_are_parsed_and_jobs_encoded_in_a_parse_worker(client, people, app, monkeypatch):
    """A sequence's circuit is the sender's input: checking it and a launch's encoding of every job
    run in the parse pool's worker processes, never on the api's event loop."""
    pool = app.state.context.experiments.pool
    ran: list[tuple[str, int]] = []
    real_run = pool.run

    async def recorded(function, *args):
        result = await real_run(function, *args)
        ran.append((function.__name__, await real_run(os.getpid)))
        return result

    monkeypatch.setattr(pool, "run", recorded)
    h = people.alice.headers
    assert (await client.put(f"{API}sequences/lab/s", json=scan(num=7), headers=h)).status_code == 201
    launched = await client.post(f"{API}sequences/lab/s/launch", headers=h)
    assert launched.status_code == 200, launched.text
    assert [name for name, _pid in ran] == ["check_sequence_input", "plan_launch"]
    assert all(pid != os.getpid() for _name, pid in ran)
    view = launched.json()
    assert view["state"].lower() == "running" and view["points"]["expected"] == 7 and view["jobs"]
    # A refusal raised in the worker comes back as the same 4xx, and nothing is written.
    ran.clear()
    bad = await client.put(f"{API}sequences/lab/bad", json=scan(circuit="OPENQASM 2.0; qreg"), headers=h)
    refused(bad, 400, 1201)
    assert ran == []  # the worker refused: nothing came back to record
    refused(await client.get(f"{API}sequences/lab/bad", headers=h), 404, 3453)


async def test_global_parameters_and_their_etag(client, people):
    h = people.alice.headers
    empty = await client.get(f"{API}global-parameters", headers=h)
    assert empty.status_code == 200 and empty.json()["parameters"] == {}
    put = await client.put(
        f"{API}global-parameters", json={"parameters": {"f": "1.5", "g": "2 * f"}}, headers=h
    )
    assert put.status_code == 200, put.text
    etag = put.headers["etag"]
    refused(
        await client.put(
            f"{API}global-parameters", json={"parameters": {"f": "2"}}, headers={**h, "If-Match": '"999"'}
        ),
        412,
        3456,
    )
    again = await client.put(
        f"{API}global-parameters", json={"parameters": {"f": "3"}}, headers={**h, "If-Match": etag}
    )
    assert again.status_code == 200 and again.json()["version"] == put.json()["version"] + 1
    refused(
        await client.put(f"{API}global-parameters", json={"parameters": {"b": "x"}}, headers=h), 400, 1251
    )
    refused(
        await client.put(f"{API}global-parameters", json={"parameters": {"a": "b", "b": "a"}}, headers=h),
        400,
        1251,
    )
    assert (await client.get(f"{API}global-parameters", headers=h)).json()["parameters"] == {"f": "3"}


async def test_device_configurations(client, people):
    h = people.alice.headers
    url = f"{API}device-configurations/manila"
    put = await client.put(url, json={"backend": "fake_manila", "shots": 500, "seed": 7}, headers=h)
    assert put.status_code == 201 and put.json()["default"] is True, put.text
    other = await client.put(
        f"{API}device-configurations/other", json={"backend": "fake_manila", "default": True}, headers=h
    )
    assert other.json()["default"] is True
    assert (await client.get(url, headers=h)).json()["default"] is False
    listed = (await client.get(f"{API}device-configurations", headers=h)).json()
    assert [c["name"] for c in listed["device_configurations"]] == ["manila", "other"], listed
    refused(await client.put(url, json={"backend": "ibm_nowhere"}, headers=h), 400, 1007)
    refused(await client.put(url, json={"backend": "fake_manila", "shots": 10**9}, headers=h), 400, 6001)
    refused(await client.get(f"{API}device-configurations/bad name!", headers=h), 400, 1200)
    assert (await client.delete(url, headers=h)).status_code == 204
    refused(await client.get(url, headers=h), 404, 3459)
    refused(await client.delete(url, headers=h), 404, 3459)


async def test_transactions_are_all_or_nothing(client, people):
    h = people.alice.headers
    url = f"{API}transactions"
    refused(await client.post(url, json={"operations": "no"}, headers=h), 400, 1200)
    refused(await client.post(url, content=b"{not json", headers=h), 400, 1200, "JSON")
    failed = await client.post(
        url,
        json={
            "operations": [
                {"method": "PUT", "path": "paths/a"},
                {"method": "GET", "path": "paths/missing"},
            ]
        },
        headers=h,
    )
    refused(failed, 404, 3451, "operation 1 (GET paths/missing)")
    refused(await client.get(f"{API}paths/a", headers=h), 404, 3451)
    preview = await client.post(
        url, json={"operations": [{"method": "PUT", "path": "paths/a"}], "commit": False}, headers=h
    )
    assert preview.status_code == 200 and preview.json()["committed"] is False
    assert preview.json()["results"][0]["status"] == 201
    refused(await client.get(f"{API}paths/a", headers=h), 404, 3451)
    refused(
        await client.post(
            url,
            json={
                "operations": [{"method": "PUT", "path": "paths/a"}],
                "preconditions": [{"path": "paths/b", "exists": True}],
            },
            headers=h,
        ),
        409,
        3456,
    )
    done = await client.post(
        url,
        json={
            "operations": [{"method": "PUT", "path": "sequences/a/s", "body": scan()}],
            "preconditions": [{"path": "paths/a", "exists": False}],
        },
        headers=h,
    )
    assert done.status_code == 200 and done.json()["committed"] is True, done.text
    version = (await client.get(f"{API}sequences/a/s", headers=h)).json()["version"]
    refused(
        await client.post(
            url,
            json={
                "operations": [{"method": "PUT", "path": "global-parameters", "body": {"parameters": {}}}],
                "preconditions": [{"path": "global-parameters", "etag": '"7"'}],
            },
            headers=h,
        ),
        409,
        3456,
    )
    refused(
        await client.post(
            url,
            json={
                "operations": [{"method": "PATCH", "path": "sequences/a/s", "body": {"shots": 5}}],
                "preconditions": [{"path": "sequences/a/s", "version": version + 1}],
            },
            headers=h,
        ),
        409,
        3456,
    )


async def test_conflicts_that_persist_are_3460_and_apply_nothing(client, people, db_engine):
    """Another transaction commits the instance's global parameters after this test's snapshot: every
    retry of the PUT meets the same serialization failure (its snapshot is the test's), so the answer is
    409 with 3460 rather than a 500."""
    instance_id = people.alice.instance.id
    async with db_engine.begin() as other:
        await other.execute(
            text(
                "INSERT INTO experiment_global_parameters (instance_id, parameters, version) "
                "VALUES (:i, '{}', 1)"
            ),
            {"i": instance_id},
        )
    try:
        response = await client.put(
            f"{API}global-parameters", json={"parameters": {"f": "1"}}, headers=people.alice.headers
        )
        refused(response, 409, 3460, "nothing was applied")
    finally:
        async with db_engine.begin() as other:
            await other.execute(
                text("DELETE FROM experiment_global_parameters WHERE instance_id = :i"), {"i": instance_id}
            )
