"""The experiment store through REST, against the real api, scheduler and executors."""

import json
import math
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.stack import EventRecorder, Stack, wait_for

API = "/api/v1/experiments/"

RX_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[1] q;
bit[1] c;
rx(theta) q[0];
c[0] = measure q[0];
"""

# Parses and validates, but the device cannot run it: an opaque gate has no definition to transpile.
OPAQUE_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
opaque mystery q;
qreg q[1];
creg c[1];
mystery q[0];
measure q -> c;
"""


def linspace(variable: str, start: str, stop: str, num: int) -> dict[str, Any]:
    return {
        "linspace": {
            "variable": variable,
            "start": start,
            "stop": stop,
            "num": num,
            "steps": [{"execute": {}}],
        }
    }


def scan(num: int = 5, shots: int = 200, backend: str = "fake_manila", **extra: Any) -> dict[str, Any]:
    return {
        "backend": backend,
        "program": "sampler",
        "circuit": RX_QASM3,
        "shots": shots,
        "iteration": {"steps": [linspace("theta", "0", "pi", num)]},
        **extra,
    }


@pytest.fixture(scope="module")
def lab(stack: Stack) -> Stack:
    """alice's tree is in lab-a; `other` (in lab-other) has a tree of its own."""
    if "other" not in stack.accounts:
        stack.add_account("other", "lab-other")
    return stack


@pytest.fixture
def root() -> str:
    """A fresh top-level folder per test, so tests sharing the instance never meet."""
    return f"t{uuid.uuid4().hex[:8]}"


def refused(response: httpx.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["code"] == code, response.text
    return str(error["message"])


def wait_state(client: httpx.Client, path: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(client.get(f"{API}sequences/{path}").json())
        return found["state"] in states

    wait_for(reached, timeout, f"sequence {path} in {states}", poll=0.2)
    return found


def test_tree_operations_and_refusals(lab: Stack, root: str) -> None:
    with lab.client("alice") as client, lab.client("other") as other:
        created = client.put(f"{API}paths/{root}/a/b")
        assert created.status_code == 201 and created.json()["new"] == [
            f"/{root}",
            f"/{root}/a",
            f"/{root}/a/b",
        ]
        assert client.put(f"{API}paths/{root}/a/b").json()["new"] == []  # idempotent
        top = client.get(f"{API}paths/{root}").json()
        assert top["children"] == [f"/{root}/a"] and top["is_sequence"] is False and top["created"]
        assert f"/{root}" in client.get(f"{API}paths/").json()["children"]
        # Another instance's member sees nothing of it.
        refused(other.get(f"{API}paths/{root}"), 404, 3451)
        assert f"/{root}" not in other.get(f"{API}paths/").json()["children"]

        assert client.put(f"{API}sequences/{root}/a/b/scan", json=scan()).status_code == 201
        refused(client.put(f"{API}paths/{root}/a/b/scan/child"), 409, 3461)  # a sequence has no children
        refused(client.put(f"{API}sequences/{root}/a", json=scan()), 409, 3452)  # a folder is not a sequence
        # Moves: into itself, onto an existing path, from a missing one: refused.
        refused(client.post(f"{API}paths/{root}/a/move", json={"to": f"/{root}/a/b/c"}), 400, 1255)
        client.put(f"{API}paths/{root}/x")
        refused(client.post(f"{API}paths/{root}/a/move", json={"to": f"/{root}/x"}), 409, 3452)
        refused(client.post(f"{API}paths/{root}/nope/move", json={"to": f"/{root}/y"}), 404, 3451)
        moved = client.post(f"{API}paths/{root}/a/move", json={"to": f"/{root}/x/moved"})
        assert moved.status_code == 200 and moved.json()["moved"] == 3
        assert client.get(f"{API}sequences/{root}/x/moved/b/scan").json()["state"] == "draft"
        refused(client.get(f"{API}sequences/{root}/a/b/scan"), 404, 3453)
        # caqtus' separator works as well in the URL form of the client (here: a literal path segment).
        tree = client.get(f"{API}tree/{root}").json()["paths"]
        assert [(e["path"], e["is_sequence"]) for e in tree] == [
            (f"/{root}", False),
            (f"/{root}/x", False),
            (f"/{root}/x/moved", False),
            (f"/{root}/x/moved/b", False),
            (f"/{root}/x/moved/b/scan", True),
        ]
        # Delete: refused while sequences are inside unless asked, refused for the root.
        refused(client.delete(f"{API}paths/{root}/x"), 409, 3457)
        refused(client.delete(f"{API}paths/"), 400, 1255)
        assert client.delete(f"{API}paths/{root}/x?delete_sequences=true").status_code == 204
        assert client.get(f"{API}paths/{root}").json()["children"] == []
        refused(client.get(f"{API}paths/{root}/x/moved/b/scan"), 404, 3451)
        refused(client.put(f"{API}paths/{root}/bad*name"), 400, 1255)


def test_bad_input_is_refused_with_codes_and_nothing_is_written(lab: Stack, root: str) -> None:
    with lab.client("alice") as client:
        refused(client.put(f"{API}sequences/{root}/s", json=scan(backend="ibm_nowhere")), 400, 1007)
        refused(
            client.put(f"{API}sequences/{root}/s", json={**scan(), "iteration": {"steps": [{"loop": {}}]}}),
            400,
            1252,
        )
        refused(
            client.put(f"{API}sequences/{root}/s", json={**scan(), "circuit": "OPENQASM 2.0; qreg"}),
            400,
            1201,
        )
        refused(client.get(f"{API}paths/{root}"), 404, 3451)  # nothing of the refused sequences was stored
        message = refused(
            client.put(f"{API}global-parameters", json={"parameters": {"a": "1", "b": "a * unknown_thing"}}),
            400,
            1251,
        )
        assert "'b'" in message and "unknown_thing" in message
        refused(
            client.put(f"{API}global-parameters", json={"parameters": {"a": "__import__('os')"}}), 400, 1251
        )

        # A circuit parameter nothing binds: refused at launch, the sequence stays a draft.
        unbound = {**scan(), "iteration": {"steps": [linspace("phi", "0", "1", 3)]}}
        assert client.put(f"{API}sequences/{root}/unbound", json=unbound).status_code == 201
        assert "theta" in refused(client.post(f"{API}sequences/{root}/unbound/launch"), 400, 1253)
        too_many = {**scan(), "iteration": {"steps": [linspace("theta", "0", "1", 10_001)]}}
        assert client.put(f"{API}sequences/{root}/big", json=too_many).status_code == 201
        refused(client.post(f"{API}sequences/{root}/big/launch"), 400, 1254)
        bad_expression = {**scan(), "iteration": {"steps": [linspace("theta", "0", "1 / 0", 3)]}}
        client.put(f"{API}sequences/{root}/zero", json=bad_expression)
        assert "steps[0].linspace.stop" in refused(
            client.post(f"{API}sequences/{root}/zero/launch"), 400, 1251
        )
        for name in ("unbound", "big", "zero"):
            view = client.get(f"{API}sequences/{root}/{name}").json()
            assert view["state"] == "draft" and view["jobs"] == [] and view["points"]["expected"] is None


def test_state_machine_allowed_and_refused_transitions(lab: Stack, root: str) -> None:
    recorder = EventRecorder(lab.namespace, routing_keys=("sequence.#",))
    recorder.bind()
    path = f"{root}/states"
    try:
        with lab.client("alice") as client:
            # 2,000 points run as 40 jobs: the sequence is still running (seconds) while the
            # refusals below are checked (a few requests); 3 points once finished before them.
            assert client.put(f"{API}sequences/{path}", json=scan(num=2000, shots=100)).status_code == 201
            # From DRAFT only launch is allowed.
            refused(client.post(f"{API}sequences/{path}/interrupt"), 409, 3455)
            refused(client.post(f"{API}sequences/{path}/reset"), 409, 3455)
            launched = client.post(f"{API}sequences/{path}/launch")
            assert launched.status_code == 200 and launched.json()["state"] == "running", launched.text
            # Not editable once launched; not launchable twice.
            refused(client.patch(f"{API}sequences/{path}", json={"shots": 10}), 409, 3454)
            refused(client.put(f"{API}sequences/{path}", json=scan(num=3)), 409, 3454)
            refused(client.post(f"{API}sequences/{path}/launch"), 409, 3455)
            refused(client.delete(f"{API}paths/{path}?delete_sequences=true"), 409, 3458)
            refused(client.post(f"{API}paths/{root}/move", json={"to": f"/{root}-moved"}), 409, 3458)
            refused(client.post(f"{API}sequences/{path}/reset"), 409, 3455)
            finished = wait_state(client, path, {"finished", "crashed", "interrupted"})
            assert finished["state"] == "finished", finished
            # FINISHED: no interrupt, no launch, no edit; reset goes back to DRAFT and drops the data.
            refused(client.post(f"{API}sequences/{path}/interrupt"), 409, 3455)
            refused(client.post(f"{API}sequences/{path}/launch"), 409, 3455)
            refused(client.patch(f"{API}sequences/{path}", json={"shots": 10}), 409, 3454)
            reset = client.post(f"{API}sequences/{path}/reset").json()
            assert reset["state"] == "draft" and reset["points"] == {"expected": None, "done": 0}
            assert reset["snapshots"] == {"global_parameters": None, "device_configuration": None}
            assert client.get(f"{API}sequences/{path}/points").json()["points"] == []
            patched = client.patch(f"{API}sequences/{path}", json={"shots": 300})
            assert patched.status_code == 200 and patched.json()["shots"] == 300
            assert patched.json()["version"] > finished["version"]
            duplicate = client.post(f"{API}sequences/{path}/duplicate", json={"to": f"/{root}/copy"})
            assert duplicate.status_code == 201 and duplicate.json()["state"] == "draft"
            assert duplicate.json()["iteration"] == patched.json()["iteration"]
            refused(client.post(f"{API}sequences/{path}/duplicate", json={"to": f"/{root}/copy"}), 409, 3452)
            listed = client.get(f"{API}sequences", params={"under": f"/{root}", "state": "draft"}).json()
            assert {s["path"] for s in listed["sequences"]} == {f"/{path}", f"/{root}/copy"}
            assert listed["count"] == 2
            refused(client.get(f"{API}sequences", params={"state": "asleep"}), 400, 1200)
            # The events followed every state, in order, on sequence.<state>.<backend>.
            seen = wait_for_sequence_events(recorder, f"/{path}", 5)
            assert [e["routing_key"] for e in seen] == [
                "sequence.draft.fake_manila",
                "sequence.preparing.fake_manila",
                "sequence.running.fake_manila",
                "sequence.finished.fake_manila",
                "sequence.draft.fake_manila",
            ]
            assert seen[3]["points_done"] == 2000 and seen[3]["expected_points"] == 2000
            assert seen[0]["sequence_id"] == finished["id"]
    finally:
        recorder.delete()


def wait_for_sequence_events(recorder: EventRecorder, path: str, count: int) -> list[dict[str, Any]]:
    def mine() -> list[dict[str, Any]]:
        return [e for e in recorder.events if e.get("path") == path]

    deadline = time.monotonic() + 30
    while len(mine()) < count and time.monotonic() < deadline:
        recorder.drain()
        time.sleep(0.2)
    return mine()


def test_preparing_crashes_when_the_jobs_cannot_be_queued(lab: Stack, root: str) -> None:
    """PREPARING -> CRASHED: the instance may have one job queued, the 120-point scan needs three."""
    # What `qruntime admin set-limits lab-other --max-concurrent-jobs 1` writes (without its start-up).
    lab.sql("UPDATE instances SET max_concurrent_jobs = 1 WHERE name = 'lab-other'")
    try:
        crash_at_preparing(lab, root)
    finally:
        lab.sql("UPDATE instances SET max_concurrent_jobs = NULL WHERE name = 'lab-other'")


def crash_at_preparing(lab: Stack, root: str) -> None:
    with lab.client("other") as client:
        client.put(f"{API}sequences/{root}/wide", json=scan(num=120, shots=100))
        crashed = client.post(f"{API}sequences/{root}/wide/launch")
        assert crashed.status_code == 200, crashed.text
        view = crashed.json()
        assert view["state"] == "crashed" and view["reason_code"] == 1012 and "3 job(s)" in view["reason"]
        assert view["jobs"] == [] and view["points"]["done"] == 0
        assert client.post(f"{API}sequences/{root}/wide/reset").json()["state"] == "draft"


def test_a_200_point_scan_follows_the_angle_and_finishes(lab: Stack, root: str) -> None:
    path = f"{root}/rabi"
    with lab.client("alice") as client:
        assert client.put(f"{API}sequences/{path}", json=scan(num=200, shots=1000)).status_code == 201
        started = time.monotonic()
        assert client.post(f"{API}sequences/{path}/launch").json()["state"] == "running"
        view = wait_state(client, path, {"finished", "crashed", "interrupted"}, timeout=180)
        elapsed = time.monotonic() - started
        assert view["state"] == "finished", view
        assert view["points"] == {"expected": 200, "done": 200}
        assert len(view["jobs"]) == 4 and {j["status"] for j in view["jobs"]} == {"Completed"}
        points = client.get(f"{API}sequences/{path}/points", params={"limit": 1000}).json()["points"]
        assert [p["index"] for p in points] == list(range(200))
        worst = 0.0
        for point in points:
            theta = point["parameters"]["theta"]
            counts = point["data"]["counts"]
            assert sum(counts.values()) == 1000 and point["started"] and point["finished"]
            worst = max(worst, abs(counts.get("1", 0) / 1000 - math.sin(theta / 2) ** 2))
        # fake_manila's readout and gate errors are a few percent; shot noise at 1000 shots is <= 1.6%.
        assert worst < 0.12, worst
        assert points[0]["parameters"]["theta"] == 0.0 and points[-1]["parameters"]["theta"] == pytest.approx(
            math.pi
        )
        print(f"200-point scan on fake_manila: {elapsed:.1f} s from launch to finished")
        page = client.get(f"{API}sequences/{path}/points", params={"offset": 190, "limit": 5}).json()
        assert [p["index"] for p in page["points"]] == [190, 191, 192, 193, 194] and page["done"] == 200


def test_an_interrupted_scan_keeps_its_done_points(lab: Stack, root: str) -> None:
    path = f"{root}/long"
    with lab.client("alice") as client:
        # 80 jobs of 50 points: far more than can finish between the first one and the interrupt.
        client.put(f"{API}sequences/{path}", json=scan(num=4000, shots=5000))
        client.post(f"{API}sequences/{path}/launch")
        wait_for(
            lambda: client.get(f"{API}sequences/{path}").json()["points"]["done"] > 0,
            120,
            "a first job of the long scan done",
            poll=0.1,
        )
        interrupted = client.post(f"{API}sequences/{path}/interrupt")
        assert interrupted.status_code == 200, interrupted.text
        view = interrupted.json()
        assert view["state"] == "interrupted" and view["reason"] == "Interrupted by the user."
        done = view["points"]["done"]
        assert 0 < done < 4000 and done % 50 == 0
        statuses = [job["status"] for job in view["jobs"]]
        assert "Cancelled" in statuses and "Queued" not in statuses and "Running" not in statuses
        lab.wait_final([job["id"] for job in view["jobs"]])
        time.sleep(0.5)  # a job finishing after the interrupt must not add points
        after = client.get(f"{API}sequences/{path}").json()
        assert after["state"] == "interrupted" and after["points"]["done"] == done
        points = client.get(f"{API}sequences/{path}/points", params={"limit": 2000}).json()["points"]
        assert len(points) == done and all(p["data"]["counts"] for p in points)
        # INTERRUPTED: neither launch nor interrupt; reset goes back to DRAFT.
        refused(client.post(f"{API}sequences/{path}/interrupt"), 409, 3455)
        refused(client.post(f"{API}sequences/{path}/launch"), 409, 3455)
        assert client.post(f"{API}sequences/{path}/reset").json()["state"] == "draft"


def test_a_scan_whose_circuit_cannot_run_crashes_with_the_reason(lab: Stack, root: str) -> None:
    path = f"{root}/broken"
    body = {**scan(num=4), "circuit": OPAQUE_QASM2, "iteration": {"steps": [linspace("k", "0", "3", 4)]}}
    with lab.client("alice") as client:
        assert client.put(f"{API}sequences/{path}", json=body).status_code == 201
        assert client.post(f"{API}sequences/{path}/launch").json()["state"] == "running"
        view = wait_state(client, path, {"finished", "crashed", "interrupted"})
        assert view["state"] == "crashed", view
        assert (
            view["reason"].startswith(f"Job {view['jobs'][0]['id']} failed: ") and "mystery" in view["reason"]
        )
        assert view["reason_code"] in (5203, 5204)
        # CRASHED: neither launch nor interrupt; reset goes back to DRAFT.
        refused(client.post(f"{API}sequences/{path}/interrupt"), 409, 3455)
        refused(client.post(f"{API}sequences/{path}/launch"), 409, 3455)
        assert client.post(f"{API}sequences/{path}/reset").json()["state"] == "draft"


def test_snapshots_taken_at_launch_ignore_later_global_changes(lab: Stack, root: str) -> None:
    path = f"{root}/snap"
    with lab.client("alice") as client:
        first = client.get(f"{API}global-parameters")
        put = client.put(
            f"{API}global-parameters",
            json={"parameters": {"angles": {"stop": "pi / 2"}, "shift": "0.25"}},
            headers={"If-Match": first.headers["etag"]},
        )
        assert put.status_code == 200, put.text
        etag = put.headers["etag"]
        refused(
            client.put(
                f"{API}global-parameters",
                json={"parameters": {}},
                headers={"If-Match": first.headers["etag"]},
            ),
            412,
            3456,
        )
        client.put(
            f"{API}device-configurations/manila-seeded",
            json={"backend": "fake_manila", "seed": 7, "shots": 500},
        )
        body = {
            **scan(),
            "shots": None,
            "iteration": {
                "steps": [
                    {"declare": {"variable": "offset", "value": "2 * shift"}},
                    linspace("theta", "offset", "angles.stop + offset", 3),
                ]
            },
        }
        client.put(f"{API}sequences/{path}", json=body)
        launched = client.post(f"{API}sequences/{path}/launch").json()
        assert launched["snapshots"]["global_parameters"] == {"angles": {"stop": "pi / 2"}, "shift": "0.25"}
        assert launched["snapshots"]["device_configuration"]["name"] == "manila-seeded"
        changed = client.put(
            f"{API}global-parameters",
            json={"parameters": {"angles": {"stop": "pi"}, "shift": "0"}},
            headers={"If-Match": etag},
        )
        assert changed.status_code == 200
        view = wait_state(client, path, {"finished", "crashed", "interrupted"})
        assert view["snapshots"]["global_parameters"] == {"angles": {"stop": "pi / 2"}, "shift": "0.25"}
        points = client.get(f"{API}sequences/{path}/points").json()["points"]
        assert [p["parameters"]["offset"] for p in points] == [0.5, 0.5, 0.5]
        assert [p["parameters"]["theta"] for p in points] == pytest.approx(
            [0.5, 0.5 + math.pi / 4, 0.5 + math.pi / 2]
        )
        assert all(sum(p["data"]["counts"].values()) == 500 for p in points)  # the configuration's shots


def test_transactions_apply_all_or_nothing(lab: Stack, root: str) -> None:
    with lab.client("alice") as client:
        client.put(f"{API}sequences/{root}/t", json=scan())
        version = client.get(f"{API}sequences/{root}/t").json()["version"]
        failing = client.post(
            f"{API}transactions",
            json={
                "operations": [
                    {"method": "PUT", "path": f"paths/{root}/made"},
                    {"method": "PATCH", "path": f"sequences/{root}/t", "body": {"shots": 999}},
                    {"method": "PUT", "path": f"sequences/{root}/u", "body": scan(backend="nowhere")},
                ]
            },
        )
        assert refused(failing, 400, 1007).startswith("operation 2 (PUT sequences/")
        refused(client.get(f"{API}paths/{root}/made"), 404, 3451)
        assert client.get(f"{API}sequences/{root}/t").json()["shots"] == 200
        stale = client.post(
            f"{API}transactions",
            json={
                "operations": [{"method": "PATCH", "path": f"sequences/{root}/t", "body": {"shots": 999}}],
                "preconditions": [{"path": f"sequences/{root}/t", "version": version - 1}],
            },
        )
        assert "version is now" in refused(stale, 409, 3456)
        applied = client.post(
            f"{API}transactions",
            json={
                "operations": [
                    {"method": "PATCH", "path": f"sequences/{root}/t", "body": {"shots": 999}},
                    {"method": "PUT", "path": f"paths/{root}/made"},
                    {"method": "GET", "path": f"sequences/{root}/t"},
                ],
                "preconditions": [
                    {"path": f"sequences/{root}/t", "version": version},
                    {"path": f"paths/{root}/made", "exists": False},
                ],
            },
        )
        assert applied.status_code == 200, applied.text
        results = applied.json()["results"]
        assert [r["status"] for r in results] == [200, 201, 200] and results[2]["body"]["shots"] == 999
        assert client.get(f"{API}paths/{root}/made").status_code == 200
        # commit: false previews and leaves nothing behind.
        preview = client.post(
            f"{API}transactions",
            json={"operations": [{"method": "PUT", "path": f"paths/{root}/preview"}], "commit": False},
        )
        assert preview.json() == {"committed": False, "results": [preview.json()["results"][0]]}
        refused(client.get(f"{API}paths/{root}/preview"), 404, 3451)


def test_sequence_events_stream_over_sse(lab: Stack, root: str) -> None:
    path = f"{root}/sse"
    with lab.client("alice") as client, lab.client("other") as other:
        client.put(f"{API}sequences/{path}", json=scan(num=2))
        client.post(f"{API}sequences/{path}/launch")
        refused(other.get(f"{API}sequences/{path}/events"), 404, 3453)
        states = []
        with client.stream("GET", f"{API}sequences/{path}/events") as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    states.append(json.loads(line[6:])["state"])
        assert states == ["draft", "preparing", "running", "finished"]


def test_an_estimator_scan_gives_evs_and_stds_per_observable(lab: Stack, root: str) -> None:
    path = f"{root}/estimate"
    body = {
        **scan(num=5, shots=4000, backend="aer_simulator"),
        "program": "estimator",
        "observables": ["Z", {"X": 0.5}],
    }
    with lab.client("alice") as client:
        refused(client.put(f"{API}sequences/{path}", json={**body, "observables": None}), 400, 1200)
        assert client.put(f"{API}sequences/{path}", json=body).status_code == 201
        client.post(f"{API}sequences/{path}/launch")
        view = wait_state(client, path, {"finished", "crashed", "interrupted"})
        assert view["state"] == "finished", view
        points = client.get(f"{API}sequences/{path}/points").json()["points"]
        assert len(points) == 5
        for point in points:
            theta = point["parameters"]["theta"]
            evs, stds = point["data"]["evs"], point["data"]["stds"]
            assert len(evs) == len(stds) == 2
            assert evs[0] == pytest.approx(math.cos(theta), abs=0.08)  # <Z> after rx(theta)
            assert evs[1] == pytest.approx(0.0, abs=0.08)  # <X>/2 stays 0
