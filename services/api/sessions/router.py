from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentPrincipal
from services.api.boundary import INT32_MAX
from services.api.dependencies import runtime_session_service
from services.api.idempotency import idempotency_of
from shared.db.repositories.sessions import SessionFilter
from shared.kit.errors import ErrorCode as E
from shared.sessions.states import SessionMode, SessionState

from .schemas import SessionCreate, SessionList, SessionUpdate, SessionView
from .service import RuntimeSessionService

SESSION_EXAMPLE = {
    "id": "d4rh1k08c2sc73a8kf10",
    "backend_name": "fake_manila",
    "mode": "dedicated",
    "state": "active",
    "accepting_jobs": True,
    "interactive_ttl": 60,
    "max_ttl": 3600,
    "active_ttl": 3600,
    "last_job_started": "2026-11-30T02:41:03.200000Z",
    "last_job_completed": "2026-11-30T02:41:03.350000Z",
    "started_at": "2026-11-30T02:41:00.010000Z",
    "closed_at": None,
    "activated_at": "2026-11-30T02:41:01.100000Z",
    "elapsed_time": 0.64,
    "timestamps": [
        {"status": "open", "timestamp": "2026-11-30T02:41:00.010000Z"},
        {"status": "active", "timestamp": "2026-11-30T02:41:01.100000Z"},
    ],
}


router = APIRouter(tags=["sessions"], route_class=DocumentedRoute)
Sessions = Annotated[RuntimeSessionService, Depends(runtime_session_service)]


@router.post(
    "/sessions",
    **documented(
        example=SESSION_EXAMPLE,
        request_example={"mode": "dedicated", "backend": "fake_manila", "max_ttl": "1h"},
        refusals=[E.BACKEND_NOT_FOUND],
    ),
)
async def create_session(
    request: Request, body: SessionCreate, sessions: Sessions, principal: CurrentPrincipal
) -> SessionView:
    """Open a session or batch

    Open a Session (`mode` dedicated: it owns its backend while active) or a Batch (`mode` batch: its jobs
    jump the queue once it started). `max_ttl` in seconds or like "2h 30m"; its clock starts with the first
    job and never pauses. Jobs join with `session_id`.
    """
    return await sessions.create(body, principal, await idempotency_of(request, principal, "sessions"))


@router.get(
    "/sessions",
    **documented(example={"sessions": [SESSION_EXAMPLE], "count": 1}),
)
async def list_sessions(
    sessions: Sessions,
    principal: CurrentPrincipal,
    backend: str | None = Query(default=None, max_length=128),
    mode: SessionMode | None = None,
    state: SessionState | None = None,
    accepting_jobs: bool | None = None,
    limit: int = Query(default=10, ge=1, le=100),
    offset: int = Query(default=0, ge=0, le=INT32_MAX),
) -> SessionList:
    """List sessions

    The caller's sessions and batches, newest first, filtered by backend, mode, state and accepting_jobs;
    `count` is the number of matches ignoring paging.
    """
    where = SessionFilter(backend=backend, mode=mode, state=state, accepting_jobs=accepting_jobs)
    return await sessions.search(where, limit, offset, principal)


@router.get(
    "/sessions/{session_id}",
    **documented(example=SESSION_EXAMPLE, refusals=[E.SESSION_NOT_FOUND]),
)
async def get_session(session_id: str, sessions: Sessions, principal: CurrentPrincipal) -> SessionView:
    """Get a session

    What the client's `session.details()` reads: state, timers (seconds), usage and history.
    """
    return await sessions.view(session_id, principal)


@router.patch(
    "/sessions/{session_id}",
    **documented(
        request_example={"accepting_jobs": False},
        refusals=[E.SESSION_NOT_FOUND, E.SESSION_CLOSED],
        status=204,
    ),
)
async def update_session(
    session_id: str, body: SessionUpdate, sessions: Sessions, principal: CurrentPrincipal
) -> None:
    """Stop accepting jobs (close)

    `{"accepting_jobs": false}` is the client's `session.close()`: queued and running jobs finish, then the
    session closes. A closed session cannot accept jobs again (409).
    """
    await sessions.update(session_id, body, principal)


@router.delete(
    "/sessions/{session_id}/close",
    **documented(refusals=[E.SESSION_NOT_FOUND], status=204),
)
async def cancel_session(session_id: str, sessions: Sessions, principal: CurrentPrincipal) -> None:
    """Cancel a session

    The client's `session.cancel()`: the session closes now, its queued jobs end Cancelled (code 4001),
    running ones finish. Cancelling a closed session changes nothing.
    """
    await sessions.cancel(session_id, principal)
