"""The console's server-side SVG charts and its workload filters (pure logic)."""

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from services.api.console import charts
from services.api.console.service import WorkloadQuery, device_errors
from shared.identity.service import Principal
from shared.kit.errors import QRuntimeError

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_histogram_draws_a_bar_per_outcome_proportional_to_its_count() -> None:
    root = parse(charts.histogram_svg({"00": 500, "11": 250, "01": 0}))
    bars = {b.get("data-outcome"): b for b in root.iter(f"{NS}rect") if b.get("class") == "bar"}
    assert set(bars) == {"00", "01", "11"}
    heights = {k: float(v.get("height", "0")) for k, v in bars.items()}
    assert heights["00"] == pytest.approx(2 * heights["11"], rel=1e-3)
    assert heights["01"] == 0


def test_histogram_keeps_the_most_frequent_outcomes_and_says_so() -> None:
    counts = {format(i, "08b"): i + 1 for i in range(200)}
    svg = charts.histogram_svg(counts)
    bars = [b for b in parse(svg).iter(f"{NS}rect") if b.get("class") == "bar"]
    assert len(bars) == charts.MAX_BARS
    assert min(int(b.get("data-count", "0")) for b in bars) == 200 - charts.MAX_BARS + 1
    assert "most frequent" in svg


def test_labels_are_escaped() -> None:
    svg = charts.histogram_svg({"<script>": 3}, title="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    parse(svg)


def test_expectation_values_have_error_bars_of_one_standard_deviation() -> None:
    root = parse(charts.expectation_svg([0.5, -0.25], [0.1, 0.05]))
    bars = [e for e in root.iter(f"{NS}line") if e.get("class") == "errorbar"]
    points = [e for e in root.iter(f"{NS}circle") if e.get("class") == "ev"]
    assert [float(p.get("data-value", "nan")) for p in points] == [0.5, -0.25]
    spans = [abs(float(b.get("y2", "0")) - float(b.get("y1", "0"))) for b in bars]
    assert spans[0] == pytest.approx(2 * spans[1], rel=1e-2)


def test_timeline_draws_queued_and_running_spans() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    spans = [
        charts.Span("a", "Completed", t0, t0 + timedelta(seconds=1), t0 + timedelta(seconds=3)),
        charts.Span("b", "Queued", t0 + timedelta(seconds=2), None, None),
    ]
    root = parse(charts.timeline_svg(spans, t0, t0 + timedelta(seconds=4)))
    running = [r for r in root.iter(f"{NS}rect") if r.get("class") == "running"]
    queued = [r for r in root.iter(f"{NS}rect") if r.get("class") == "queued"]
    assert len(running) == 1 and len(queued) == 2
    assert running[0].get("fill") == charts.DONE


def test_coupling_map_has_every_qubit_and_coupler() -> None:
    edges = [(0, 1), (1, 0), (1, 2), (2, 3), (3, 4)]
    svg = charts.coupling_map_svg(5, edges, {0: 0.01, 4: 0.2}, {(0, 1): 0.01, (3, 4): 0.05}, "map")
    root = parse(svg)
    assert len([c for c in root.iter(f"{NS}circle") if c.get("class") == "qubit"]) == 5
    couplers = [line for line in root.iter(f"{NS}line") if line.get("class") == "coupler"]
    assert len(couplers) == 4  # (0,1) and (1,0) are one coupler
    assert "no data" in svg  # couplers (1,2) and (2,3) have no error figure


def test_device_errors_from_properties() -> None:
    props = {
        "qubits": [[{"name": "T1", "value": 1}, {"name": "readout_error", "value": 0.02}], []],
        "gates": [
            {"gate": "cx", "qubits": [1, 0], "parameters": [{"name": "gate_error", "value": 0.03}]},
            {"gate": "cx", "qubits": [0, 1], "parameters": [{"name": "gate_error", "value": 0.01}]},
            {"gate": "sx", "qubits": [0], "parameters": [{"name": "gate_error", "value": 0.001}]},
        ],
    }
    qubits, couplers = device_errors(props)
    assert qubits == {0: 0.02}
    assert couplers == {(0, 1): 0.01}


def test_usage_chart_shows_the_allocation_line() -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC)
    svg = charts.usage_svg([(day, 10.0), (day + timedelta(days=1), 5.0)], 100.0, "usage")
    root = parse(svg)
    assert [e for e in root.iter(f"{NS}line") if e.get("class") == "allocation"]
    assert re.search(r"allocation 100 s", svg)


def test_workload_query_maps_ibm_names_to_stored_states() -> None:
    principal = Principal("u1", "alice", False, "i1", None)
    where = WorkloadQuery.parse({"status": "Completed", "mode": "job", "page": "3"}).to_filter(principal)
    assert where.job_statuses == ("DONE",) and where.session_states == ()
    assert where.modes == ("job",) and where.offset == 50 and where.user_id == "u1"
    sessions = WorkloadQuery.parse({"status": "Active"}).to_filter(principal)
    assert sessions.session_states == ("active",) and sessions.job_statuses == ()
    admin = Principal("u2", "root", True, None, None)
    assert WorkloadQuery.parse({}).to_filter(admin).user_id is None


@pytest.mark.parametrize("params", [{"status": "Nope"}, {"mode": "x"}, {"since": "2y"}, {"page": "0"}])
def test_workload_query_refuses_unknown_filters(params: dict[str, str]) -> None:
    with pytest.raises(QRuntimeError) as refused:
        WorkloadQuery.parse(params)
    assert refused.value.status == 400
