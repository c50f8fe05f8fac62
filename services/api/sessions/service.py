"""Rules for sessions: what may be created, closed, cancelled and read."""

import re
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.idempotency import IdempotentRequest, Replay, claim_or_replay, remember_answer
from services.api.ids import is_wellformed_id, new_id
from services.api.views import view_of
from shared.backends.catalog import BackendInfo
from shared.db.engine import unit_of_work
from shared.db.models import RuntimeSession
from shared.db.repositories.outbox import OutboxRepository
from shared.db.repositories.sessions import RuntimeSessionRepository, SessionFilter
from shared.identity.service import Principal
from shared.kit.errors import Conflict, ErrorCode, InvalidInput, NotFound
from shared.kit.settings import Settings
from shared.sessions.changes import announce_session_state
from shared.sessions.lifecycle import close_now, stop_accepting
from shared.sessions.states import SessionMode

from .schemas import SessionCreate, SessionList, SessionUpdate, SessionView, StateTimestamp

_DURATION = re.compile(r"(\d+)\s*([dhms])")
_DURATION_TEXT = re.compile(r"\s*(\d+\s*[dhms]\s*)+")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def new_session_id() -> str:
    return new_id()


def parse_max_ttl(value: int | str, limit: int) -> int:
    """Seconds from an int, a digit string or a duration such as "2h 30m 40s" (the client's max_time),
    between 1 and the system maximum."""
    if isinstance(value, str) and len(value) > 64:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "max_ttl is longer than 64 characters.")
    if isinstance(value, int):
        seconds = value
    elif value.strip().isdigit():
        seconds = int(value.strip())
    elif _DURATION_TEXT.fullmatch(value):
        seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(value))
    else:
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"max_ttl {value.strip()[:64]!r} is neither a number of seconds nor a duration like '2h 30m 40s'.",
        )
    if not 1 <= seconds <= limit:
        shown = seconds if abs(seconds) < 10**18 else "more than 10^18"
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"max_ttl is {shown} s; it must be between 1 s and the system maximum of {limit} s.",
        )
    return seconds


class RuntimeSessionService:
    def __init__(
        self,
        database: async_sessionmaker[AsyncSession],
        catalog: dict[str, BackendInfo],
        settings: Settings,
    ) -> None:
        self.database = database
        self.catalog = catalog
        self.settings = settings

    async def create(
        self, request: SessionCreate, principal: Principal, idempotency: IdempotentRequest | None = None
    ) -> SessionView:
        if request.backend not in self.catalog:
            raise InvalidInput(
                ErrorCode.BACKEND_NOT_FOUND,
                f"Backend '{request.backend}' is not served here; available: {', '.join(self.catalog)}.",
            )
        max_ttl = (
            self.settings.session_default_max_ttl
            if request.max_ttl is None
            else parse_max_ttl(request.max_ttl, self.settings.session_max_ttl_limit)
        )
        interactive_ttl = (
            self.settings.session_interactive_ttl
            if request.mode is SessionMode.DEDICATED
            else self.settings.batch_interactive_ttl
        )
        runtime_session = RuntimeSession(
            id=new_session_id(),
            backend=request.backend,
            mode=request.mode,
            accepting_jobs=True,
            max_ttl=max_ttl,
            interactive_ttl=interactive_ttl,
            active_ttl=max_ttl,
            elapsed_time=0.0,
            user_id=principal.user_id,
            instance_id=principal.instance_id,
        )
        try:
            async with unit_of_work(self.database) as db:
                await claim_or_replay(db, idempotency)
                await RuntimeSessionRepository(db).add(runtime_session)
                await announce_session_state(OutboxRepository(db), runtime_session)
                view = to_view(runtime_session, 0.0)
                await remember_answer(db, idempotency, view.model_dump(mode="json", by_alias=True))
        except Replay as replay:
            return SessionView.model_validate(replay.response)
        return view

    async def view(self, session_id: str, principal: Principal) -> SessionView:
        async with unit_of_work(self.database) as db:
            found = await self._get(RuntimeSessionRepository(db), session_id, principal)
        return to_view(*found)

    async def search(
        self, where: SessionFilter, limit: int, offset: int, principal: Principal
    ) -> SessionList:
        if not principal.is_admin:
            where = replace(where, user_id=principal.user_id)
        async with unit_of_work(self.database) as db:
            rows, total = await RuntimeSessionRepository(db).search(where, limit, offset)
        return SessionList(sessions=[to_view(*row) for row in rows], count=total)

    async def update(self, session_id: str, request: SessionUpdate, principal: Principal) -> None:
        """{"accepting_jobs": false} is close(): queued and running jobs finish, then it closes.
        Closing twice, or a closed session, is fine (the client closes on every context exit)."""
        async with unit_of_work(self.database) as db:
            runtime_session, _ = await self._get(RuntimeSessionRepository(db), session_id, principal)
            if request.accepting_jobs:
                if not runtime_session.accepting_jobs:
                    raise Conflict(
                        ErrorCode.SESSION_CLOSED,
                        f"Session {session_id} no longer accepts jobs and cannot accept them again; "
                        "create a new session.",
                    )
                return
            await stop_accepting(db, session_id)

    async def cancel(self, session_id: str, principal: Principal) -> None:
        """cancel(): closed now, its queued jobs cancelled; running ones finish."""
        async with unit_of_work(self.database) as db:
            await self._get(RuntimeSessionRepository(db), session_id, principal)
            await close_now(
                db,
                session_id,
                reason="cancelled",
                job_reason=f"Session {session_id} was cancelled before this job started.",
            )

    async def _get(
        self, repository: RuntimeSessionRepository, session_id: str, principal: Principal
    ) -> tuple[RuntimeSession, float]:
        found = await repository.get_with_usage(session_id) if is_wellformed_id(session_id) else None
        # Another user's session answers exactly like a missing one.
        if found is None or not principal.may_see(found[0].user_id):
            raise NotFound(ErrorCode.SESSION_NOT_FOUND, f"Session {session_id} was not found.")
        return found


def to_view(runtime_session: RuntimeSession, usage: float) -> SessionView:
    return view_of(
        SessionView,
        runtime_session,
        backend_name=runtime_session.backend,
        elapsed_time=round(usage, 3),
        timestamps=[StateTimestamp.model_validate(entry) for entry in runtime_session.timestamps or []],
    )
