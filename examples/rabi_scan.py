"""A Rabi-style scan with the experiment store: a small tree, a global parameter, a linspace scan of a
rotation angle on fake_manila, launched, waited for, and printed as a curve.

Needs only the standard library and qruntime's light client. Against `make run`'s stack:

    QRUNTIME_URL=http://127.0.0.1:8000 QRUNTIME_API_KEY=qrt_... .venv/bin/python examples/rabi_scan.py

(QRUNTIME_INSTANCE=<instance CRN> when your user belongs to several instances.)
"""

import math
import os

from qruntime.experiments import ExperimentSessionMaker

CIRCUIT = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[1] q;
bit[1] c;
rx(theta) q[0];
c[0] = measure q[0];
"""

PATH = r"\examples\rabi\angle_scan"  # caqtus' form; "/examples/rabi/angle_scan" works too


def main() -> None:
    maker = ExperimentSessionMaker(
        os.environ.get("QRUNTIME_URL", "http://127.0.0.1:8000"),
        api_key=os.environ["QRUNTIME_API_KEY"],
        instance=os.environ.get("QRUNTIME_INSTANCE"),
    )
    # One block: everything below commits together when it exits, or not at all.
    with maker() as session:
        if session.paths.does_path_exists(r"\examples\rabi"):
            session.paths.delete_path(r"\examples\rabi", delete_sequences=True)
        session.paths.create_path(r"\examples\rabi\notes")
        parameters = session.get_global_parameters()  # a copy; other globals are kept
        parameters["rabi"] = {"turns": "1", "max_angle": "2 * pi * rabi.turns"}
        session.set_global_parameters(parameters)
        session.sequences.create(
            PATH,
            backend="fake_manila",
            circuit=CIRCUIT,
            shots=2000,
            iteration={
                "steps": [
                    {
                        "linspace": {
                            "variable": "theta",
                            "start": "0",
                            "stop": "rabi.max_angle",
                            "num": 25,
                            "steps": [{"execute": {}}],
                        }
                    }
                ]
            },
        )
        session.sequences.launch(PATH)

    with maker() as session:
        sequence = session.sequences.wait(PATH, timeout=240)
        points = session.sequences.get_points(PATH)
    print(f"{sequence.path}: {sequence.state.value}, {len(points)} of {sequence.expected_points} points")
    worst = 0.0
    for point in points:
        theta = point["parameters"]["theta"]
        counts = point["data"]["counts"]
        p1 = counts.get("1", 0) / sum(counts.values())
        ideal = math.sin(theta / 2) ** 2
        worst = max(worst, abs(p1 - ideal))
        print(f"theta {theta:5.2f}  P(1) = {p1:.3f}  ideal {ideal:.3f}  {'#' * round(40 * p1)}")
    print(f"largest deviation from sin^2(theta/2): {worst:.3f}")


if __name__ == "__main__":
    main()
