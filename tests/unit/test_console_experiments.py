"""The console's experiments pages: the tree, the scanned parameter and the plotted quantity (pure logic)."""

import xml.etree.ElementTree as ET

import pytest

from services.api.console.experiments import build_tree, scan_charts, scanned_parameter, snapshot_summary

NS = "{http://www.w3.org/2000/svg}"


def point(index: int, parameters: dict[str, object], data: dict[str, object]) -> dict[str, object]:
    return {"index": index, "parameters": parameters, "data": data}


def circles(svg: str) -> list[ET.Element]:
    return [c for c in ET.fromstring(svg).iter(f"{NS}circle") if c.get("class") == "point"]


def test_the_tree_nests_paths_under_their_parents() -> None:
    entries = [
        {"path": "/lab/rabi/scan", "is_sequence": True, "state": "finished"},
        {"path": "/lab", "is_sequence": False, "state": None},
        {"path": "/lab/rabi", "is_sequence": False, "state": None},
        {"path": "/other", "is_sequence": False, "state": None},
    ]
    roots = build_tree(entries)
    assert [r.name for r in roots] == ["lab", "other"]
    scan = roots[0].children[0].children[0]
    assert (scan.path, scan.is_sequence, scan.state) == ("/lab/rabi/scan", True, "finished")


def test_the_scanned_parameter_is_the_first_numeric_one_that_varies() -> None:
    points = [point(i, {"amp": 0.5, "label": "x", "theta": i * 0.1}, {}) for i in range(3)]
    assert scanned_parameter(points) == "theta"
    assert scanned_parameter([point(0, {"amp": 0.5}, {})]) is None


def test_a_sampler_scan_plots_p1_of_a_one_bit_register_and_the_top_outcome_otherwise() -> None:
    one_bit = [point(i, {"theta": float(i)}, {"counts": {"0": 100 - 25 * i, "1": 25 * i}}) for i in range(5)]
    [(caption, svg)] = scan_charts("sampler", one_bit)
    assert caption == "P(1) against theta"
    ys = {float(c.get("data-x", "")): float(c.get("data-y", "")) for c in circles(svg)}
    assert ys == {0.0: 0.0, 1.0: 0.25, 2.0: 0.5, 3.0: 0.75, 4.0: 1.0}

    bell = [point(i, {"k": i}, {"counts": {"00": 60, "11": 40 - i}}) for i in range(3)]
    [(caption, svg)] = scan_charts("sampler", bell)
    assert caption == "P(00) against k" and len(circles(svg)) == 3


def test_an_estimator_scan_plots_each_observable_with_error_bars() -> None:
    points = [point(i, {"t": i / 2}, {"evs": [1 - i, 0.5], "stds": [0.1, 0.2]}) for i in range(4)]
    charts = scan_charts("estimator", points)
    assert len(charts) == 2
    root = ET.fromstring(charts[0][1])
    assert [float(c.get("data-y", "")) for c in circles(charts[0][1])] == [1.0, 0.0, -1.0, -2.0]
    bars = [b for b in root.iter(f"{NS}line") if b.get("class") == "errorbar"]
    assert len(bars) == 4
    length = abs(float(bars[0].get("y2", "")) - float(bars[0].get("y1", "")))
    assert length > 0
    # Without a scanned parameter the points stand at their index.
    flat = [point(i, {}, {"evs": [0.1], "stds": [0.0]}) for i in range(3)]
    [(caption, svg)] = scan_charts("estimator", flat)
    assert "point index" in caption and len(circles(svg)) == 3


def test_nothing_to_plot_gives_no_chart_and_snapshots_are_summarized() -> None:
    assert scan_charts("sampler", []) == []
    lines = snapshot_summary(
        {"global_parameters": {"rabi": {"f": 2}}, "device_configuration": {"name": "lab", "shots": 100}}
    )
    assert lines == ['global rabi = {"f": 2}', 'device configuration: name "lab", shots 100']
    assert snapshot_summary({"global_parameters": None, "device_configuration": None}) == []


@pytest.mark.parametrize("text", ["<script>", "a & b"])
def test_labels_are_escaped(text: str) -> None:
    [(_, svg)] = scan_charts(
        "sampler", [point(0, {text: 0.0}, {"counts": {"1": 1}}), point(1, {text: 1.0}, {"counts": {"0": 1}})]
    )
    ET.fromstring(svg)  # well-formed: the parameter's name is escaped
