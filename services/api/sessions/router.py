from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.api.auth import CurrentPrincipal
from services.api.dependencies import runtime_session_service
from services.api.idempotency import idempotency_of
from shared.db.repositories.sessions import SessionFilter
from shared.sessions.states import SessionMode, SessionState

from .schemas import SessionCreate, SessionList, SessionUpdate, SessionView
from .service import RuntimeSessionService

router = APIRouter(tags=["sessions"])
Sessions = Annotated[RuntimeSessionService, Depends(runtime_session_service)]


@router.post("/sessions", response_model=SessionView)
async def create_session(
    request: Request, body: SessionCreate, sessions: Sessions, principal: CurrentPrincipal
) -> SessionView:
    return await sessions.create(body, principal, await idempotency_of(request, principal, "sessions"))


@router.get("/sessions", response_model=SessionList)
async def list_sessions(
    sessions: Sessions,
    principal: CurrentPrincipal,
    backend: str | None = Query(default=None, max_length=128),
    mode: SessionMode | None = None,
    state: SessionState | None = None,
    accepting_jobs: bool | None = None,
    limit: int = Query(default=10, ge=1, le=100),
    offset: int = Query(default=0, ge=0),
) -> SessionList:
    where = SessionFilter(backend=backend, mode=mode, state=state, accepting_jobs=accepting_jobs)
    return await sessions.search(where, limit, offset, principal)


@router.get("/sessions/{session_id}", response_model=SessionView)
async def get_session(session_id: str, sessions: Sessions, principal: CurrentPrincipal) -> SessionView:
    return await sessions.view(session_id, principal)


@router.patch("/sessions/{session_id}", status_code=204)
async def update_session(
    session_id: str, body: SessionUpdate, sessions: Sessions, principal: CurrentPrincipal
) -> Response:
    await sessions.update(session_id, body, principal)
    return Response(status_code=204)


@router.delete("/sessions/{session_id}/close", status_code=204)
async def cancel_session(session_id: str, sessions: Sessions, principal: CurrentPrincipal) -> Response:
    await sessions.cancel(session_id, principal)
    return Response(status_code=204)
