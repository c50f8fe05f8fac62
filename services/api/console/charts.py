"""SVG charts for the console, drawn on the server (no JavaScript, nothing fetched): a histogram of
counts, expectation values with error bars, a session's timeline, a device's coupling map and usage
against an allocation. Pure functions of their data; every text they embed is escaped."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from html import escape

# Colours chosen for at least 4.5:1 contrast against white where they carry text, and told apart
# by more than hue where it matters (labels name every state).
INK = "#1b1f24"
MUTED = "#57606a"
GRID = "#d0d7de"
BAR = "#0b5cad"
QUEUED = "#9a6700"
RUNNING = "#0b5cad"
DONE = "#1a7f37"
FAILED = "#cf222e"
CANCELLED = "#6e7781"

MAX_BARS = 64


def _svg(width: float, height: float, title: str, body: list[str], kind: str = "chart") -> str:
    label = escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="100%" role="img" aria-label="{label}" class="{kind}">'
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: object, anchor: str = "middle", size: int = 11, fill: str = INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}">{escape(str(text))}</text>'
    )


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (axis end)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def histogram_svg(counts: dict[str, int], title: str = "Counts") -> str:
    """Bars of the most frequent outcomes (at most MAX_BARS), in outcome order, with their counts."""
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_BARS]
    bars = sorted(top, key=lambda kv: kv[0])
    width, height, left, bottom, top_pad = 640, 260, 48, 70, 16
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    peak = nice_max(max((v for _, v in bars), default=1))
    body = [
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 12}" y2="{top_pad + plot_h}" stroke="{GRID}"/>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top_pad + plot_h * (1 - fraction)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 12}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 4, y + 4, f"{peak * fraction:g}", anchor="end", fill=MUTED))
    slot = plot_w / max(len(bars), 1)
    for i, (outcome, value) in enumerate(bars):
        bar_h = plot_h * value / peak
        x = left + i * slot + slot * 0.1
        y = top_pad + plot_h - bar_h
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{bar_h:.1f}" '
            f'fill="{BAR}" data-outcome="{escape(outcome)}" data-count="{value}">'
            f"<title>{escape(outcome)}: {value}</title></rect>"
        )
        cx = x + slot * 0.4
        label_y = top_pad + plot_h + 12
        body.append(
            f'<text x="{cx:.1f}" y="{label_y:.1f}" font-size="10" fill="{INK}" text-anchor="end" '
            f'transform="rotate(-60 {cx:.1f} {label_y:.1f})">{escape(outcome)}</text>'
        )
    shown = "" if len(top) == len(counts) else f" (the {len(top)} most frequent of {len(counts)})"
    return _svg(width, height, f"{title}{shown}", body)


def expectation_svg(evs: Sequence[float], stds: Sequence[float], title: str = "Expectation values") -> str:
    """Points with ±1 standard deviation error bars, one per observable (index on the x axis)."""
    values = [float(v) for v in evs][:MAX_BARS]
    errors = [abs(float(s)) for s in stds][: len(values)] + [0.0] * max(0, len(values) - len(stds))
    width, height, left, bottom, top_pad = 640, 240, 52, 36, 16
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    reach = nice_max(max((abs(v) + e for v, e in zip(values, errors, strict=True)), default=1.0))
    low, high = -reach, reach

    def y_of(value: float) -> float:
        return top_pad + plot_h * (high - value) / (high - low)

    body = []
    for mark in (low, 0.0, high):
        y = y_of(mark)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 12}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 4, y + 4, f"{mark:g}", anchor="end", fill=MUTED))
    slot = plot_w / max(len(values), 1)
    for i, (value, error) in enumerate(zip(values, errors, strict=True)):
        x = left + slot * (i + 0.5)
        body.append(
            f'<line class="errorbar" x1="{x:.1f}" y1="{y_of(value - error):.1f}" x2="{x:.1f}" '
            f'y2="{y_of(value + error):.1f}" stroke="{INK}"/>'
        )
        body.append(
            f'<circle class="ev" cx="{x:.1f}" cy="{y_of(value):.1f}" r="4" fill="{BAR}" '
            f'data-value="{value:.6g}" data-std="{error:.6g}"><title>#{i}: {value:.6g} ± {error:.3g}</title></circle>'
        )
        body.append(_text(x, height - bottom + 16, i, fill=MUTED))
    return _svg(width, height, title, body)


@dataclass(frozen=True)
class Span:
    """One job on a session's timeline: queued from `created` to `started`, running until `finished`."""

    label: str
    status: str  # IBM name: Queued, Running, Completed, Failed, Cancelled
    created: datetime
    started: datetime | None
    finished: datetime | None


_END_COLOURS = {"Completed": DONE, "Failed": FAILED, "Cancelled": CANCELLED, "Running": RUNNING}


def timeline_svg(spans: Sequence[Span], start: datetime, end: datetime, title: str = "Jobs") -> str:
    """A row per job: the queued stretch thin, the running stretch thick, coloured by how it ended."""
    rows = list(spans)[:200]
    width, left, row_h, top_pad = 640, 110, 18, 24
    height = top_pad + row_h * max(len(rows), 1) + 24
    total = max((end - start).total_seconds(), 1e-3)
    plot_w = width - left - 12

    def x_of(moment: datetime) -> float:
        return left + plot_w * min(max((moment - start).total_seconds() / total, 0.0), 1.0)

    body = [
        _text(left, 14, "0 s", anchor="start", fill=MUTED),
        _text(width - 12, 14, f"{total:.1f} s", anchor="end", fill=MUTED),
    ]
    for i, span in enumerate(rows):
        y = top_pad + i * row_h
        body.append(_text(left - 6, y + 12, span.label, anchor="end", size=10))
        queued_end = span.started or span.finished or end
        body.append(
            f'<rect class="queued" x="{x_of(span.created):.1f}" y="{y + 7}" '
            f'width="{max(x_of(queued_end) - x_of(span.created), 1):.1f}" height="3" fill="{QUEUED}">'
            f"<title>{escape(span.label)} queued</title></rect>"
        )
        if span.started is not None:
            run_end = span.finished or end
            body.append(
                f'<rect class="running" x="{x_of(span.started):.1f}" y="{y + 3}" '
                f'width="{max(x_of(run_end) - x_of(span.started), 2):.1f}" height="11" '
                f'fill="{_END_COLOURS.get(span.status, RUNNING)}">'
                f"<title>{escape(span.label)} {escape(span.status)}</title></rect>"
            )
    legend_y = height - 6
    for j, (name, colour) in enumerate(
        [("queued", QUEUED), ("running", RUNNING), ("completed", DONE), ("failed", FAILED)]
    ):
        x = left + j * 100
        body.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(x + 14, legend_y, name, anchor="start", size=10))
    return _svg(width, height, title, body)


@cache
def _layout(num_qubits: int, edges: tuple[tuple[int, int], ...]) -> tuple[tuple[float, float], ...]:
    """Positions in [0, 1]² for the device graph (a seeded spring layout, computed once per device)."""
    import rustworkx

    graph = rustworkx.PyGraph()
    graph.add_nodes_from(range(num_qubits))
    graph.add_edges_from_no_data(list(edges))
    positions = rustworkx.spring_layout(graph, seed=7, num_iter=300)
    points = [positions[i] for i in range(num_qubits)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    return tuple(((p[0] - min(xs)) / span_x, (p[1] - min(ys)) / span_y) for p in points)


def _error_colour(error: float | None, worst: float) -> str:
    if error is None:
        return MUTED
    share = min(error / worst, 1.0) if worst > 0 else 0.0
    # From blue (good) to red (bad), dark enough to read on white.
    red, blue = int(11 + share * (207 - 11)), int(173 - share * (173 - 46))
    return f"#{red:02x}{int(92 - share * 58):02x}{blue:02x}"


def coupling_map_svg(
    num_qubits: int,
    edges: Sequence[tuple[int, int]],
    qubit_errors: dict[int, float],
    edge_errors: dict[tuple[int, int], float],
    title: str,
) -> str:
    """Qubits as circles (colour: readout error), couplers as lines (colour and width: 2-qubit gate error)."""
    unique = tuple(sorted({(min(a, b), max(a, b)) for a, b in edges if a != b}))
    points = _layout(num_qubits, unique)
    size = 420 if num_qubits <= 30 else 640
    pad = 22

    def at(q: int) -> tuple[float, float]:
        x, y = points[q]
        return pad + x * (size - 2 * pad), pad + y * (size - 2 * pad)

    worst_edge = max(edge_errors.values(), default=0.0)
    worst_qubit = max(qubit_errors.values(), default=0.0)
    body = []
    for a, b in unique:
        error = edge_errors.get((a, b), edge_errors.get((b, a)))
        (x1, y1), (x2, y2) = at(a), at(b)
        note = "no data" if error is None else f"{error:.2e}"
        body.append(
            f'<line class="coupler" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{_error_colour(error, worst_edge)}" stroke-width="4">'
            f"<title>{a}-{b}: 2-qubit gate error {note}</title></line>"
        )
    radius = 11 if num_qubits <= 30 else 8
    for q in range(num_qubits):
        x, y = at(q)
        error = qubit_errors.get(q)
        note = "no data" if error is None else f"{error:.2e}"
        body.append(
            f'<circle class="qubit" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
            f'fill="{_error_colour(error, worst_qubit)}"><title>qubit {q}: readout error {note}</title></circle>'
        )
        body.append(
            f'<text x="{x:.1f}" y="{y + 3.5:.1f}" text-anchor="middle" font-size="{9 if radius > 8 else 7}" '
            f'fill="#ffffff">{q}</text>'
        )
    return _svg(size, size, title, body, kind="chart map" if num_qubits <= 30 else "chart")


def usage_svg(days: Sequence[tuple[datetime, float]], allocation: float | None, title: str) -> str:
    """Cumulative usage per day as a line (bars for each day's usage) against the allocation."""
    width, height, left, bottom, top_pad = 640, 240, 60, 40, 16
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    cumulative, running = [], 0.0
    for _, seconds in days:
        running += seconds
        cumulative.append(running)
    peak = nice_max(max([running, allocation or 0.0, 1.0]))

    def y_of(value: float) -> float:
        return top_pad + plot_h * (1 - value / peak)

    body = []
    for fraction in (0.0, 0.5, 1.0):
        y = y_of(peak * fraction)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 12}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 4, y + 4, f"{peak * fraction:g} s", anchor="end", fill=MUTED))
    slot = plot_w / max(len(days), 1)
    points = []
    for i, ((day, seconds), total) in enumerate(zip(days, cumulative, strict=True)):
        x = left + slot * i
        body.append(
            f'<rect class="day" x="{x + slot * 0.15:.1f}" y="{y_of(seconds):.1f}" width="{slot * 0.7:.1f}" '
            f'height="{plot_h * seconds / peak:.1f}" fill="{GRID}"><title>{day:%Y-%m-%d}: {seconds:.1f} s</title></rect>'
        )
        points.append(f"{x + slot / 2:.1f},{y_of(total):.1f}")
        if len(days) <= 14 or i % max(len(days) // 7, 1) == 0:
            body.append(_text(x + slot / 2, height - bottom + 14, f"{day:%m-%d}", fill=MUTED))
    if points:
        body.append(
            f'<polyline class="cumulative" points="{" ".join(points)}" fill="none" stroke="{BAR}" stroke-width="2"/>'
        )
    if allocation is not None:
        y = y_of(allocation)
        body.append(
            f'<line class="allocation" x1="{left}" y1="{y:.1f}" x2="{width - 12}" y2="{y:.1f}" '
            f'stroke="{FAILED}" stroke-dasharray="6 4" stroke-width="2"/>'
        )
        body.append(_text(width - 14, y - 4, f"allocation {allocation:g} s", anchor="end", fill=FAILED))
    return _svg(width, height, title, body)


def scan_svg(
    points: Sequence[tuple[float, float, float | None]], x_label: str, y_label: str, title: str
) -> str:
    """A sequence's points against its scanned parameter: (x, y, std or None), joined in x order, with
    ±1 standard deviation error bars where a std is given. The y axis spans the data (and 0 to 1 for
    probabilities, which the caller passes as y_label starting with "P(")."""
    shown = sorted(((float(x), float(y), None if e is None else abs(float(e))) for x, y, e in points))
    width, height, left, bottom, top_pad, right = 640, 260, 60, 44, 16, 16
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    xs = [x for x, _, _ in shown] or [0.0, 1.0]
    lows = [y - (e or 0.0) for _, y, e in shown]
    highs = [y + (e or 0.0) for _, y, e in shown]
    if y_label.startswith("P("):
        y_low, y_high = 0.0, 1.0
    else:
        y_low, y_high = min(lows, default=-1.0), max(highs, default=1.0)
        if y_high - y_low < 1e-12:
            y_low, y_high = y_low - 1.0, y_high + 1.0
        pad = (y_high - y_low) * 0.05
        y_low, y_high = y_low - pad, y_high + pad
    x_low, x_high = min(xs), max(xs)
    if x_high - x_low < 1e-12:
        x_low, x_high = x_low - 1.0, x_high + 1.0

    def x_of(value: float) -> float:
        return left + plot_w * (value - x_low) / (x_high - x_low)

    def y_of(value: float) -> float:
        return top_pad + plot_h * (y_high - value) / (y_high - y_low)

    body = []
    for fraction in (0.0, 0.5, 1.0):
        mark = y_low + (y_high - y_low) * fraction
        y = y_of(mark)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 4, y + 4, f"{mark:.3g}", anchor="end", fill=MUTED))
    for fraction in (0.0, 0.5, 1.0):
        mark = x_low + (x_high - x_low) * fraction
        body.append(_text(x_of(mark), top_pad + plot_h + 16, f"{mark:.3g}", fill=MUTED))
    body.append(_text(left + plot_w / 2, height - 6, x_label))
    body.append(
        f'<text x="14" y="{top_pad + plot_h / 2:.1f}" text-anchor="middle" font-size="11" fill="{INK}" '
        f'transform="rotate(-90 14 {top_pad + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    if len(shown) > 1:
        line = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y, _ in shown)
        body.append(f'<polyline points="{line}" fill="none" stroke="{BAR}" stroke-width="1.5"/>')
    for x, y, error in shown:
        if error:
            body.append(
                f'<line class="errorbar" x1="{x_of(x):.1f}" y1="{y_of(y - error):.1f}" x2="{x_of(x):.1f}" '
                f'y2="{y_of(y + error):.1f}" stroke="{INK}"/>'
            )
        note = "" if error is None else f" ± {error:.3g}"
        body.append(
            f'<circle class="point" cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3.5" fill="{BAR}" '
            f'data-x="{x:.6g}" data-y="{y:.6g}"><title>{escape(x_label)} = {x:.6g}: {y:.6g}{note}</title></circle>'
        )
    return _svg(width, height, title, body)
