"""The console's experiments pages: the instance's path tree, and a sequence with its points plotted
against the scanned parameter. Everything is read through the experiment store's own calls
(`ExperimentService.call`), so the tenancy is the API's: another instance's sequence is the same
NotFound as a missing one."""

import json
from dataclasses import dataclass, field
from typing import Any

from services.api.experiments.calls import Call
from services.api.experiments.schemas import normalize_path
from services.api.experiments.service import ExperimentService
from shared.experiments.states import SequenceState
from shared.identity.service import Principal

from . import charts

MAX_POINTS = 10_000
MAX_OBSERVABLE_CHARTS = 8
FINAL_STATES = {state.value for state in SequenceState if state.is_final}


@dataclass
class TreeNode:
    name: str
    path: str
    is_sequence: bool
    state: str | None
    children: list["TreeNode"] = field(default_factory=list)


def build_tree(entries: list[dict[str, Any]]) -> list[TreeNode]:
    """Nested nodes from the store's flat tree (every path with its ancestors, in path order)."""
    nodes: dict[str, TreeNode] = {}
    roots: list[TreeNode] = []
    for entry in sorted(entries, key=lambda e: str(e["path"])):
        path = str(entry["path"])
        parent, _, name = path.rpartition("/")
        node = TreeNode(name, path, bool(entry["is_sequence"]), entry.get("state"))
        nodes[path] = node
        (nodes[parent].children if parent in nodes else roots).append(node)
    return roots


def scanned_parameter(points: list[dict[str, Any]]) -> str | None:
    """The first numeric parameter whose value changes from point to point (None: nothing varies)."""
    if not points:
        return None
    for name, value in points[0]["parameters"].items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        values = {p["parameters"].get(name) for p in points}
        if len(values) > 1 and all(isinstance(v, int | float) for v in values):
            return str(name)
    return None


def _counts(data: dict[str, Any]) -> dict[str, int]:
    counts = data.get("counts")
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}


def sampler_outcome(points: list[dict[str, Any]]) -> str | None:
    """The outcome to follow: "1" for a one-bit register, otherwise the most frequent over the scan."""
    totals: dict[str, int] = {}
    for point in points:
        for outcome, count in _counts(point["data"]).items():
            totals[outcome] = totals.get(outcome, 0) + count
    if not totals:
        return None
    if set(totals) <= {"0", "1"}:
        return "1"
    return max(sorted(totals), key=lambda outcome: totals[outcome])


def scan_charts(program: str, points: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(caption, SVG) per plotted quantity: P(outcome) for a sampler, each observable's ev for an estimator."""
    if not points:
        return []
    name = scanned_parameter(points)
    x_label = name or "point index"

    def x_of(point: dict[str, Any]) -> float:
        return float(point["parameters"][name]) if name else float(point["index"])

    if program == "estimator":
        found = []
        width = max((len(p["data"].get("evs") or []) for p in points), default=0)
        for k in range(min(width, MAX_OBSERVABLE_CHARTS)):
            rows: list[tuple[float, float, float | None]] = []
            for point in points:
                evs, stds = point["data"].get("evs") or [], point["data"].get("stds") or []
                if k < len(evs):
                    rows.append((x_of(point), float(evs[k]), float(stds[k]) if k < len(stds) else None))
            label = f"<O{k}>" if width > 1 else "<O>"
            caption = f"Expectation value of observable {k} against {x_label}"
            found.append((caption, charts.scan_svg(rows, x_label, label, caption)))
        return found
    outcome = sampler_outcome(points)
    if outcome is None:
        return []
    rows = []
    for point in points:
        counts = _counts(point["data"])
        shots = sum(counts.values())
        if shots:
            rows.append((x_of(point), counts.get(outcome, 0) / shots, None))
    caption = f"P({outcome}) against {x_label}"
    return [(caption, charts.scan_svg(rows, x_label, f"P({outcome})", caption))]


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def snapshot_summary(snapshots: dict[str, Any]) -> list[str]:
    """Lines describing what the sequence ran with: its global parameters and device configuration."""
    lines: list[str] = []
    glob = snapshots.get("global_parameters")
    if isinstance(glob, dict) and glob:
        lines.extend(f"global {key} = {_short(value)}" for key, value in list(glob.items())[:20])
        if len(glob) > 20:
            lines.append(f"… and {len(glob) - 20} more global parameters")
    device = snapshots.get("device_configuration")
    if isinstance(device, dict) and device:
        parts = [
            f"{key} {_short(device[key])}" for key in ("name", "backend", "shots", "seed") if key in device
        ]
        options = device.get("options")
        if options:
            parts.append(f"options {_short(options)}")
        lines.append("device configuration: " + ", ".join(parts))
    return lines


@dataclass
class SequencePage:
    sequence: dict[str, Any]
    charts: list[tuple[str, str]]
    snapshots: list[str]
    final: bool
    points_shown: int


class ConsoleExperiments:
    def __init__(self, experiments: ExperimentService) -> None:
        self.experiments = experiments

    async def tree(self, principal: Principal) -> list[TreeNode]:
        reply = await self.experiments.call(principal, Call("GET", "tree"))
        return build_tree(reply.body["paths"])

    async def sequence(self, path: str, principal: Principal) -> SequencePage:
        where = normalize_path(path)  # segments hold no '?', '#' or '%'
        sequence = (await self.experiments.call(principal, Call("GET", f"sequences{where}"))).body
        points: list[dict[str, Any]] = []
        if sequence["points"]["done"]:
            call = Call("GET", f"sequences{where}/points?limit={MAX_POINTS}")
            points = (await self.experiments.call(principal, call)).body["points"]
        return SequencePage(
            sequence=sequence,
            charts=scan_charts(str(sequence["program"]), points),
            snapshots=snapshot_summary(sequence.get("snapshots") or {}),
            final=sequence["state"] in FINAL_STATES,  # a draft's page follows it: it may be launched
            points_shown=len(points),
        )
