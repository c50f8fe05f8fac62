"""What each console page shows, gathered through the services the API uses (same tenancy rules: a
job or session of another user is the same NotFound as a missing one) and the console repository."""

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from services.api.dependencies import AppContext
from services.api.events.service import KEEPALIVE_SECONDS, sse_frame
from services.api.jobs.schemas import JobView
from services.api.sessions.schemas import SessionView
from shared.backends import catalog as catalog_data
from shared.db.engine import unit_of_work
from shared.db.models import Instance, User
from shared.db.repositories.console import (
    BATCH,
    JOB,
    SESSION,
    ConsoleRepository,
    KeyRow,
    WorkloadFilter,
    WorkloadRow,
)
from shared.db.repositories.events import EventRepository
from shared.db.repositories.identity import IdentityRepository
from shared.db.repositories.jobs import JobFilter
from shared.db.repositories.overview import OverviewRepository
from shared.identity.service import Principal
from shared.jobs.states import IBM_STATUS_NAMES, JobStatus
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, QRuntimeError
from shared.sessions.states import SessionState

from . import charts
from .results import Plot, plots_of_result, summarize_inputs

T = TypeVar("T")

POLL_SECONDS = 1.0  # the console's own event stream still polls (the API's streams use the EventHub)

PAGE_SIZE = 25
JOB_STATUS_BY_NAME = {name: status.value for status, name in IBM_STATUS_NAMES.items()}
SESSION_STATE_BY_NAME = {state.value.capitalize(): state.value for state in SessionState}
STATUS_CHOICES = [*JOB_STATUS_BY_NAME, *SESSION_STATE_BY_NAME]
MODE_CHOICES = [JOB, SESSION, BATCH]
TIME_RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


@dataclass(frozen=True)
class WorkloadQuery:
    """The workloads page's filters, as read from its query string."""

    backend: str = ""
    status: str = ""
    mode: str = ""
    since: str = ""
    tag: str = ""
    page: int = 1

    @classmethod
    def parse(cls, params: dict[str, str]) -> "WorkloadQuery":
        status = params.get("status", "")
        mode = params.get("mode", "")
        since = params.get("since", "")
        if status and status not in STATUS_CHOICES:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, f"Unknown status {status!r}.")
        if mode and mode not in MODE_CHOICES:
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST, f"Unknown mode {mode!r}; use job, session or batch."
            )
        if since and since not in TIME_RANGES:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, f"Unknown time range {since!r}.")
        page_text = params.get("page", "1") or "1"
        if not page_text.isdigit() or not 1 <= int(page_text) <= 100_000:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, "page must be a whole number from 1.")
        return cls(
            backend=params.get("backend", "")[:128],
            status=status,
            mode=mode,
            since=since,
            tag=params.get("tag", "")[:128],
            page=int(page_text),
        )

    def to_filter(self, principal: Principal) -> WorkloadFilter:
        return WorkloadFilter(
            user_id=None if principal.is_admin else principal.user_id,
            backend=self.backend or None,
            modes=(self.mode,) if self.mode else (),
            job_statuses=(JOB_STATUS_BY_NAME[self.status],) if self.status in JOB_STATUS_BY_NAME else (),
            session_states=(SESSION_STATE_BY_NAME[self.status],)
            if self.status in SESSION_STATE_BY_NAME
            else (),
            created_after=datetime.now(UTC) - TIME_RANGES[self.since] if self.since else None,
            tag=self.tag or None,
            limit=PAGE_SIZE,
            offset=(self.page - 1) * PAGE_SIZE,
        )

    def query_string(self, **changes: object) -> str:
        values = {
            "backend": self.backend,
            "status": self.status,
            "mode": self.mode,
            "since": self.since,
            "tag": self.tag,
            "page": self.page,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


def status_name(row: WorkloadRow) -> str:
    if row.kind == JOB:
        return JobStatus(row.status).ibm_name
    return row.status.capitalize()


@dataclass
class Workloads:
    rows: list[WorkloadRow]
    total: int
    instances: dict[str, str]
    last_event_id: int


@dataclass
class HistoryEntry:
    at: datetime
    state: str
    reason: str | None = None
    reason_code: int | None = None


@dataclass
class JobPage:
    job: JobView
    history: list[HistoryEntry]
    inputs: list[str]
    charts: list[tuple[str, str]]  # (title, svg)
    error_text: str | None
    logs: str
    final: bool
    instance_name: str | None = None


@dataclass
class SessionPage:
    session: SessionView
    jobs: list[JobView]
    job_count: int
    timeline: str
    created: datetime | None


@dataclass
class BackendRow:
    name: str
    num_qubits: int
    simulator: bool
    queued: int
    running: int
    live_executors: int
    coupling_svg: str | None
    median_readout_error: float | None = None
    median_2q_error: float | None = None


@dataclass
class UsageRow:
    instance: Instance
    consumed: float
    allocation: float | None
    chart: str
    window_days: float


@dataclass
class AdminPage:
    users: list[User]
    instances: list[Instance]
    members: dict[str, list[str]]
    keys: list[KeyRow]
    new_key: str | None = None
    notice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ConsoleService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def workloads(self, query: WorkloadQuery, principal: Principal) -> Workloads:
        async with unit_of_work(self.ctx.sessions) as session:
            repo = ConsoleRepository(session)
            rows, total = await repo.workloads(query.to_filter(principal))
            last_event_id = await repo.last_event_id()
            instances = {i.id: i.name for i in await IdentityRepository(session).instances()}
        return Workloads(rows, total, instances, last_event_id)

    async def last_event_id(self) -> int:
        async with unit_of_work(self.ctx.sessions) as session:
            return await ConsoleRepository(session).last_event_id()

    async def job(self, job_id: str, principal: Principal) -> JobPage:
        job = await self.ctx.jobs.view(job_id, principal, exclude_params=False)  # NotFound for others
        status = JobStatus(next(s for s, n in IBM_STATUS_NAMES.items() if n == job.status))
        async with unit_of_work(self.ctx.sessions) as session:
            records = await EventRepository(session).of_job(job_id, 0, limit=200)
        history = [
            HistoryEntry(
                at=datetime.fromisoformat(r.body["occurred_at"]),
                state=r.body.get("status") or r.body["state"],
                reason=r.body.get("reason"),
                reason_code=r.body.get("reason_code"),
            )
            for r in records
            if r.body.get("type") == "job.state_changed"
        ]
        if not history:  # events are kept for a while only; the job's own times remain
            history = [HistoryEntry(job.created, "Queued")]
            if job.started:
                history.append(HistoryEntry(job.started, "Running"))
            if job.finished:
                history.append(
                    HistoryEntry(job.finished, job.status, job.state.reason, job.state.reason_code)
                )
        drawn: list[tuple[str, str]] = []
        error_text = None
        if status.is_final:
            try:
                body, media_type = await self.ctx.jobs.result(job_id, principal)
            except Conflict:
                body, media_type = "", "text/plain"
            if status is JobStatus.DONE and media_type == "application/json":
                no_plots: list[Plot] = []
                for plot in await self._decoded(plots_of_result, body, no_plots):
                    if plot.counts:
                        drawn.append((plot.title, charts.histogram_svg(plot.counts, plot.title)))
                    elif plot.evs:
                        drawn.append((plot.title, charts.expectation_svg(plot.evs, plot.stds, plot.title)))
            elif status is not JobStatus.DONE:
                error_text = body if media_type == "text/plain" else None
        inputs = (
            await self._decoded(
                summarize_inputs,
                json.dumps(job.params),
                ["The inputs are too large to summarize here; the API returns them whole."],
            )
            if job.params is not None
            else []
        )
        logs = await self.ctx.jobs.logs(job_id, principal)
        job.params = None  # not rendered raw
        return JobPage(job, history, inputs, drawn, error_text, logs, status.is_final)

    async def _decoded(self, read: Callable[[str], T], text: str, too_large: T) -> T:
        """`read(text)` in a parse worker: a job's inputs are the sender's QPY, and decoding them (or a
        large result) is never done on the event loop. Beyond the parse budget, `too_large`."""
        try:
            return cast(T, await self.ctx.jobs.pool.run(read, text))
        except QRuntimeError:
            return too_large

    async def session(self, session_id: str, principal: Principal) -> SessionPage:
        view = await self.ctx.runtime_sessions.view(session_id, principal)  # NotFound for others
        listed = await self.ctx.jobs.find(
            JobFilter(session_id=session_id, ascending=True, limit=200), principal, exclude_params=True
        )
        created = view.timestamps[0].timestamp if view.timestamps else None
        now = datetime.now(UTC)
        start = min([j.created for j in listed.jobs] + ([created] if created else []), default=now)
        end = view.closed_at or now
        if listed.jobs:
            end = max([end, *[j.finished or now for j in listed.jobs]])
        spans = [charts.Span(j.id[:10], j.status, j.created, j.started, j.finished) for j in listed.jobs]
        timeline = charts.timeline_svg(spans, start, end, f"Jobs of session {view.id}")
        return SessionPage(view, listed.jobs, listed.count, timeline, created)

    async def backends(self) -> list[BackendRow]:
        settings = self.ctx.settings
        async with unit_of_work(self.ctx.sessions) as session:
            overview = OverviewRepository(session)
            live = await overview.live_executors(settings.executor_lease_seconds)
            queued = await overview.queue_lengths()
            running = await ConsoleRepository(session).running_by_backend()
        rows = []
        for name, info in self.ctx.backends.catalog.items():
            row = BackendRow(
                name=name,
                num_qubits=info.num_qubits,
                simulator=info.simulator,
                queued=queued.get(name, 0),
                running=running.get(name, 0),
                live_executors=live.get(name, 0),
                coupling_svg=None,
            )
            if not info.simulator:
                conf = catalog_data.configuration(name, settings.aer_max_qubits, settings.max_shots)
                props = catalog_data.properties(name)
                edges = [(int(a), int(b)) for a, b in conf.get("coupling_map") or []]
                qubit_errors, edge_errors = device_errors(props)
                row.coupling_svg = charts.coupling_map_svg(
                    info.num_qubits, edges, qubit_errors, edge_errors, f"Coupling map of {name}"
                )
                row.median_readout_error = _median(list(qubit_errors.values()))
                row.median_2q_error = _median(list(edge_errors.values()))
            rows.append(row)
        return rows

    async def usage(self, principal: Principal) -> list[UsageRow]:
        identity = self.ctx.identity
        since = identity.usage_window_start()
        rows = []
        async with unit_of_work(self.ctx.sessions) as session:
            repo = IdentityRepository(session)
            instances = (
                await repo.instances() if principal.is_admin else await repo.instances_of(principal.user_id)
            )
            console = ConsoleRepository(session)
            for instance in instances:
                days = await console.usage_by_day(instance.id, since)
                consumed = await repo.usage_seconds(instance.id, since)
                chart = charts.usage_svg(
                    days, instance.usage_allocation_seconds, f"Usage of {instance.name} per day, cumulative"
                )
                rows.append(
                    UsageRow(
                        instance,
                        consumed,
                        instance.usage_allocation_seconds,
                        chart,
                        self.ctx.settings.usage_window_days,
                    )
                )
        return rows

    async def admin(self) -> AdminPage:
        async with unit_of_work(self.ctx.sessions) as session:
            identity = IdentityRepository(session)
            console = ConsoleRepository(session)
            return AdminPage(
                users=await identity.users(),
                instances=await identity.instances(),
                members=await console.members(),
                keys=await console.keys(),
            )

    async def event_stream(self, principal: Principal, after: int) -> AsyncIterator[str]:
        """Server-Sent Events of the caller's jobs and sessions (everyone's for administrators), from
        the same event log as the API's per-job streams; the page refreshes its table on each."""
        user_id = None if principal.is_admin else principal.user_id
        idle = 0.0
        yield "retry: 2000\n\n"
        while True:
            async with unit_of_work(self.ctx.sessions) as session:
                records = await ConsoleRepository(session).events_after(user_id, after)
            for record in records:
                after = record.id
                yield sse_frame(record)
            if records:
                idle = 0.0
                continue
            await self.ctx.relay.changes.wait(POLL_SECONDS)
            idle += POLL_SECONDS
            if idle >= KEEPALIVE_SECONDS:
                idle = 0.0
                yield ": keep-alive\n\n"


def device_errors(props: dict[str, Any]) -> tuple[dict[int, float], dict[tuple[int, int], float]]:
    """Readout error per qubit and the two-qubit gate error per coupler from a device's properties."""
    qubit_errors: dict[int, float] = {}
    for index, entries in enumerate(props.get("qubits") or []):
        for entry in entries:
            if entry.get("name") == "readout_error" and entry.get("value") is not None:
                qubit_errors[index] = float(entry["value"])
    edge_errors: dict[tuple[int, int], float] = {}
    for gate in props.get("gates") or []:
        qubits = gate.get("qubits") or []
        if len(qubits) != 2:
            continue
        for parameter in gate.get("parameters") or []:
            if parameter.get("name") == "gate_error" and parameter.get("value") is not None:
                a, b = sorted(int(q) for q in qubits)
                value = float(parameter["value"])
                edge_errors[(a, b)] = min(value, edge_errors.get((a, b), value))
    return qubit_errors, edge_errors


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
