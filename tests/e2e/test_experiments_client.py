"""The experiment store through its Python client `qruntime.experiments`, and examples/rabi_scan.py."""

import os
import pickle
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from qruntime.experiments import (
    DeviceConfiguration,
    ExperimentSessionMaker,
    InvalidInputError,
    InvalidTransitionError,
    PathHasSequencesError,
    PathNotFoundError,
    PreconditionFailedError,
    SequenceNotEditableError,
    SequenceState,
)
from tests.stack import ROOT, Stack

RX_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[1] q;
bit[1] c;
rx(theta) q[0];
c[0] = measure q[0];
"""


def iteration(num: int, stop: str = "pi") -> dict:
    return {
        "steps": [
            {
                "linspace": {
                    "variable": "theta",
                    "start": "0",
                    "stop": stop,
                    "num": num,
                    "steps": [{"execute": {}}],
                }
            }
        ]
    }


@pytest.fixture(scope="module")
def maker(stack: Stack) -> ExperimentSessionMaker:
    account = stack.accounts["alice"]
    return ExperimentSessionMaker(stack.url, api_key=account.api_key, instance=account.instance_crn)


@pytest.fixture
def root() -> str:
    return f"\\c{uuid.uuid4().hex[:8]}"  # caqtus' form of a path


def test_the_client_needs_only_the_standard_library() -> None:
    code = (
        "import sys, qruntime.experiments\n"
        "third_party = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'qruntime', '__main__'}\n"
        "assert not third_party, third_party\n"
    )
    # -S: no site-packages at all, only the repository on the path.
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_tree_operations_and_refusals(maker: ExperimentSessionMaker, root: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    with maker() as session:
        assert session.paths.create_path(f"{root}\\a\\b") == [
            root.replace("\\", "/"),
            f"{root}/a".replace("\\", "/"),
            f"{root}/a/b".replace("\\", "/"),
        ]
        # Reads inside the block see its own writes.
        assert session.paths.does_path_exists(f"{root}\\a\\b")
        assert session.paths.get_children(root) == {f"{root}/a".replace("\\", "/")}
    slash = root.replace("\\", "/")
    with maker() as session:
        assert session.paths.does_path_exists(f"{slash}/a/b")
        assert session.paths.get_path_creation_date(f"{root}\\a") > before
        session.sequences.create(
            f"{root}\\a\\b\\scan", backend="fake_manila", circuit=RX_QASM3, iteration=iteration(3)
        )
        with pytest.raises(InvalidInputError):
            session.paths.move(f"{root}\\a", f"{root}\\a\\b\\inside")
        with pytest.raises(PathNotFoundError):
            session.paths.move(f"{root}\\missing", f"{root}\\elsewhere")
        session.paths.move(f"{root}\\a", f"{root}\\renamed")
        assert session.sequences.is_sequence(f"{root}\\renamed\\b\\scan")
        with pytest.raises(PathHasSequencesError):
            session.paths.delete_path(f"{root}\\renamed")
        assert f"{slash}/renamed/b/scan" in session.paths.get_all_paths()
    with maker() as session:
        assert not session.paths.does_path_exists(f"{root}\\a")
        session.paths.delete_path(f"{root}\\renamed", delete_sequences=True)
    with maker() as session:
        assert session.paths.get_children(root) == set()


def test_a_block_that_raises_leaves_nothing_behind(maker: ExperimentSessionMaker, root: str) -> None:
    with maker() as session:
        before = session.get_global_parameters()
    with pytest.raises(RuntimeError, match="changed my mind"), maker() as session:
        session.paths.create_path(f"{root}\\kept-nowhere")
        session.set_global_parameters({"only": "1"})
        session.sequences.create(
            f"{root}\\s", backend="fake_manila", circuit=RX_QASM3, iteration=iteration(2)
        )
        assert session.get_global_parameters() == {"only": "1"}  # its own write, seen inside
        raise RuntimeError("changed my mind")
    with maker() as session:
        assert not session.paths.does_path_exists(root)
        assert session.get_global_parameters() == before


def test_a_concurrent_reader_never_sees_half_a_block(
    stack: Stack, maker: ExperimentSessionMaker, root: str
) -> None:
    blocks, per_block = 4, 6
    slash = root.replace("\\", "/")
    with maker() as session:
        session.paths.create_path(root)
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for block in range(blocks):
                with maker() as session:
                    for item in range(per_block):
                        session.paths.create_path(f"{root}\\b{block}\\p{item}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    observed: set[int] = set()
    with stack.client() as client:
        while not done.is_set():
            paths = client.get(f"/api/v1/experiments/tree{slash}").json()["paths"]
            counts = {}
            for entry in paths:
                parts = entry["path"].split("/")
                if len(parts) >= 3:
                    counts[parts[2]] = counts.get(parts[2], 0) + 1
            observed |= set(counts.values())
            assert set(counts.values()) <= {per_block + 1}, counts  # a block's folder and all its paths
    thread.join()
    assert not errors, errors
    assert observed == {per_block + 1}


def test_two_concurrent_blocks_on_one_sequence_one_commits(maker: ExperimentSessionMaker, root: str) -> None:
    path = f"{root}\\shared"
    with maker() as session:
        session.sequences.create(
            path, backend="fake_manila", circuit=RX_QASM3, iteration=iteration(3), shots=100
        )
    both_read = threading.Barrier(2)
    outcome: dict[int, str] = {}

    def block(shots: int) -> None:
        try:
            with maker() as session:
                assert session.sequences.get(path).shots == 100
                session.sequences.update(path, shots=shots)
                session.paths.create_path(f"{root}\\written-by-{shots}")
                both_read.wait(timeout=30)
            outcome[shots] = "committed"
        except PreconditionFailedError as exc:
            outcome[shots] = f"conflict: {exc.message}"

    threads = [threading.Thread(target=block, args=(shots,)) for shots in (111, 222)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [shots for shots, result in outcome.items() if result == "committed"]
    losers = [shots for shots, result in outcome.items() if result.startswith("conflict")]
    assert len(winners) == 1 and len(losers) == 1, outcome
    assert "version is now" in outcome[losers[0]]
    with maker() as session:
        assert session.sequences.get(path).shots == winners[0]
        assert session.paths.does_path_exists(f"{root}\\written-by-{winners[0]}")
        assert not session.paths.does_path_exists(f"{root}\\written-by-{losers[0]}")


def test_sequence_life_through_the_client(maker: ExperimentSessionMaker, root: str) -> None:
    path = f"{root}\\rabi"
    with maker() as session:
        session.default_device_configurations["client-manila"] = DeviceConfiguration(
            backend="fake_manila", shots=300, seed=11, default=True
        )
        assert session.default_device_configurations["client-manila"].seed == 11
        assert "client-manila" in session.default_device_configurations
        session.sequences.create(path, backend="fake_manila", circuit=RX_QASM3, iteration=iteration(4))
        with pytest.raises(InvalidTransitionError):
            session.sequences.interrupt(path)
        session.sequences.launch(path)
        # The launch is pending until the block commits.
        assert session.sequences.get_state(path) is SequenceState.RUNNING
    with maker() as session:
        with pytest.raises(SequenceNotEditableError):
            session.sequences.update(path, shots=5)
        finished = session.sequences.wait(path, timeout=120)
        assert finished.state is SequenceState.FINISHED and finished.done_points == 4
        assert finished.snapshots["device_configuration"]["seed"] == 11
        points = session.sequences.get_points(path)
        assert [p["index"] for p in points] == [0, 1, 2, 3]
        assert all(sum(p["data"]["counts"].values()) == 300 for p in points)
        assert any(s["path"].endswith("/rabi") for s in session.sequences.find(state="finished", under=root))
    with maker() as session:
        session.sequences.reset(path)
        session.sequences.duplicate(path, f"{root}\\rabi-copy")
    with maker() as session:
        assert session.sequences.get_state(path) is SequenceState.DRAFT
        assert session.get_sequence(f"{root}\\rabi-copy").state is SequenceState.DRAFT
        del session.default_device_configurations["client-manila"]
    with maker() as session:
        assert "client-manila" not in session.default_device_configurations


def test_a_session_is_not_picklable_nor_thread_safe(maker: ExperimentSessionMaker) -> None:
    session = maker()
    with pytest.raises(RuntimeError, match="with"):
        session.get_global_parameters()
    with session:
        with pytest.raises(TypeError):
            pickle.dumps(session)
        with pytest.raises(RuntimeError, match="already active"):
            session.__enter__()
        failures: list[BaseException] = []

        def elsewhere() -> None:
            try:
                session.get_global_parameters()
            except RuntimeError as exc:
                failures.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert failures and "thread" in str(failures[0])
    assert pickle.loads(pickle.dumps(maker)).url == maker.url  # the maker travels, the session does not


def test_rabi_scan_example_runs(stack: Stack) -> None:
    account = stack.accounts["alice"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "QRUNTIME_URL": stack.url,
        "QRUNTIME_API_KEY": account.api_key,
        "QRUNTIME_INSTANCE": account.instance_crn,
    }
    # -S: the example runs with the standard library and the light client only.
    done = subprocess.run(
        [sys.executable, "-S", ROOT / "examples" / "rabi_scan.py"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "/examples/rabi/angle_scan: finished, 25 of 25 points" in done.stdout, done.stdout
    assert done.stdout.count("P(1) =") == 25
    worst = float(done.stdout.split("largest deviation from sin^2(theta/2): ")[1].split()[0])
    assert worst < 0.15, done.stdout
