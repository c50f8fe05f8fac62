"""/api/v1/deployments in-process: programs validated at creation, runs, and every refusal."""

import pytest

from tests.endpoints.conftest import refusal as refused
from tests.endpoints.conftest import written
from tests.inprocess import add_job
from tests.stack import BELL_QASM2

WIDE = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[6];\ncreg c[6];\nmeasure q -> c;\n'


def body(name: str = "bell", circuit: str = BELL_QASM2, count: int = 1) -> dict:
    return {"name": name, "programs": [{"quantum_circuit": circuit, "assembler_language": "QASM2"}] * count}


@pytest.mark.parametrize(
    ("program", "words"),
    [
        (
            {"quantum_circuit": "OPENQASM 2.0;\nqreg q[1];\nfoo q[0];\n", "assembler_language": "QASM2"},
            "OpenQASM 2",
        ),
        (
            {"quantum_circuit": "OPENQASM 3.0;\nqubit q;\nh q[;\n", "assembler_language": "QASM3"},
            "OpenQASM 3",
        ),
        ({"quantum_circuit": BELL_QASM2, "assembler_language": "QASM3"}, "must start with 'OPENQASM 3'"),
        ({"quantum_circuit": "bm90IHFweQ==", "assembler_language": "QPY"}, "QPY data does not load"),
        ({"quantum_circuit": "%%%", "assembler_language": "QPY"}, "base64"),
        ({"quantum_circuit": "import os", "assembler_language": "QISKIT-PYTHON"}, "never executes"),
        ({"quantum_circuit": BELL_QASM2, "assembler_language": "QUIL"}, "QASM2, QASM3, QPY"),
    ],
)
async def test_bad_programs_are_refused_at_creation(client, people, program, words):
    bad = {"name": "bad", "programs": [body()["programs"][0], program]}
    error = refused(
        await client.post("/api/v1/deployments", json=bad, headers=people.alice.headers), 400, 1201, words
    )
    assert error["message"].startswith("program 1:")
    assert (await client.get("/api/v1/deployments", headers=people.alice.headers)).json()["count"] == 0


async def test_create_read_list_replace_delete(client, people):
    h = people.alice.headers
    refused(await client.post("/api/v1/deployments", json=body(count=6), headers=h), 400, 1203, "at most 5")
    refused(await client.post("/api/v1/deployments", json={"name": "x"}, headers=h), 400, 1200, "programs")
    created = await client.post("/api/v1/deployments", json=body(), headers=h)
    assert created.status_code == 201, created.text
    deployment = created.json()
    url = f"/api/v1/deployments/{deployment['id']}"
    assert deployment["programs"][0]["num_qubits"] == 2
    assert (await client.get(url, headers=h)).json()["name"] == "bell"
    listed = (await client.get("/api/v1/deployments?name=bell", headers=h)).json()
    assert [d["id"] for d in listed["deployments"]] == [deployment["id"]]
    refused(await client.get("/api/v1/deployments?limit=0", headers=h), 400, 1200, "limit")
    replaced = await client.put(url, json=body("renamed", count=2), headers=h)
    assert (
        replaced.status_code == 200
        and replaced.json()["name"] == "renamed"
        and len(replaced.json()["programs"]) == 2
    )
    refused(
        await client.put(
            url,
            json={"name": "renamed", "programs": [{"quantum_circuit": "x", "assembler_language": "QASM2"}]},
            headers=h,
        ),
        400,
        1201,
    )
    assert (await client.delete(url, headers=h)).status_code == 204
    refused(await client.get(url, headers=h), 404, 3405)


async def test_other_users_deployments_are_invisible(client, people):
    made = (
        await client.post("/api/v1/deployments", json=body("private"), headers=people.alice.headers)
    ).json()
    url = f"/api/v1/deployments/{made['id']}"
    h = people.bob.headers
    for response in (
        await client.get(url, headers=h),
        await client.post(f"{url}/jobs", json={"device": "aer_simulator"}, headers=h),
        await client.put(url, json=body("stolen"), headers=h),
        await client.delete(url, headers=h),
        await client.get(f"/api/v1/deployments/{'x' * 100}", headers=h),
    ):
        refused(response, 404, 3405)
    assert (await client.get("/api/v1/deployments", headers=h)).json()["count"] == 0
    assert (await client.get(url, headers=people.admin.headers)).status_code == 200


async def test_runs_and_bad_runs(client, people, db):
    h = people.alice.headers
    wide = (await client.post("/api/v1/deployments", json=body("wide", WIDE, count=2), headers=h)).json()
    url = f"/api/v1/deployments/{wide['id']}/jobs"
    cases = [
        ({"device": "ibm_nowhere", "shots": 10}, 400, 1007),
        ({"device": "aer_simulator", "shots": 0}, 400, 6001),
        ({"device": "aer_simulator", "shots": -3}, 400, 6001),
        ({"device": "fake_manila", "shots": 10}, 400, 1002),
        ({"device": "aer_simulator", "shots": 10, "type": "ESTIMATOR"}, 400, 1200),
        ({"device": "aer_simulator", "shots": 10, "type": "ESTIMATOR", "observables": ["ZZZZZZ"]}, 400, 1200),
        ({"device": "aer_simulator", "shots": 10, "type": "TELEPORT"}, 400, 1200),
    ]
    before = await written(db)
    for run, status, code in cases:
        refused(await client.post(url, json=run, headers=h), status, code)
    assert await written(db) == before
    refused(
        await client.post("/api/v1/deployments/nope/jobs", json={"device": "aer_simulator"}, headers=h),
        404,
        3405,
    )
    ran = await client.post(url, json={"device": "aer_simulator", "shots": 10}, headers=h)
    assert ran.status_code == 201, ran.text
    job = (await client.get(f"/api/v1/jobs/{ran.json()['id']}", headers=h)).json()
    assert job["program"]["id"] == "runner" and job["type"] == "RUNNER" and job["deployment_id"] == wide["id"]
    estimated = await client.post(
        url,
        json={"device": "aer_simulator", "shots": 100, "type": "ESTIMATOR", "observables": "ZZZZZZ"},
        headers=h,
    )
    assert estimated.status_code == 201, estimated.text
    refused(
        await client.delete(f"/api/v1/deployments/{wide['id']}", headers=h), 409, 3410, "delete those jobs"
    )


async def test_deleting_a_deployment_a_job_holds_is_refused(client, people, db):
    h = people.alice.headers
    made = (await client.post("/api/v1/deployments", json=body(), headers=h)).json()
    await add_job(db, deployment_id=made["id"], user_id=people.alice.user.id)
    await db.commit()
    refused(await client.delete(f"/api/v1/deployments/{made['id']}", headers=h), 409, 3410)
