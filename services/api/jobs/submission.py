"""A submission, from its request body to the job row it becomes: decoded, validated and normalised
in a parse worker (`prepare_submission`, see services/api/programs/pool.py), checked against the
session it joins, and built QUEUED. JobService (service.py) runs these steps in its unit of work."""

import json
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from services.api.boundary import describe_validation
from services.api.ids import new_id
from services.api.programs.validation import Limits, NormalizedParams, decode_body, normalize
from shared.backends.catalog import BackendInfo, device_of_mock
from shared.db.models import Job, RuntimeSession
from shared.identity.service import Principal
from shared.jobs.states import JobStatus
from shared.kit.errors import Conflict, ErrorCode, InvalidInput
from shared.sessions.states import SessionState

from .schemas import JobCreate


def new_job_id() -> str:
    return new_id()


def queued_job(principal: Principal, params: NormalizedParams, **fields: Any) -> Job:
    """A new job of the principal's user, QUEUED and never started, with `params` as its inputs."""
    return Job(
        id=new_job_id(),
        status=JobStatus.QUEUED,
        params=params.encoded,
        num_pubs=params.num_pubs,
        total_shots=params.total_shots,
        attempts=0,
        user_id=principal.user_id,
        **fields,
    )


def find_backend(catalog: dict[str, BackendInfo], name: str) -> BackendInfo:
    backend = catalog.get(name)
    if backend is None:
        raise InvalidInput(
            ErrorCode.BACKEND_NOT_FOUND,
            f"Backend '{name}' is not served here; available: {', '.join(catalog)}.",
        )
    return backend


def prepare_submission(
    body: bytes, catalog: dict[str, BackendInfo], limits: Limits
) -> tuple[JobCreate, NormalizedParams, str]:
    """Decode, validate and normalise a submission (runs in a parse worker, see ParsePool); returns
    the request without its params, the normalised params and the backend that runs the job."""
    raw = decode_body(body, limits.max_decoded_bytes, limits.anywhere())
    if not isinstance(raw, dict):
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "The request body must be a JSON object.")
    try:
        request = JobCreate.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, describe_validation(exc)) from exc
    if request.private:
        # A private job's inputs and results must not be kept; qruntime keeps them until the job
        # is deleted, so it says so rather than run the job as if it were private.
        raise InvalidInput(
            ErrorCode.OPTION_NOT_SUPPORTED,
            "Option environment.private=True is refused: qruntime keeps a job's inputs and results "
            "until the job is deleted (DELETE /jobs/{id}); submit it without private and delete it "
            "once you have read its result.",
        )
    device = device_of_mock(request.backend)
    backend = device if device in catalog else request.backend
    params = normalize(request.program_id, request.params, find_backend(catalog, backend), limits)
    if device is not None:
        # A dry run (mock device): its device's executor answers it without simulating.
        stored = json.loads(params.encoded)
        stored["dry_run"] = True
        params = replace(params, encoded=json.dumps(stored))
    # The decoded circuits stay here: only the normalised (encoded) params travel back.
    return request.model_copy(update={"params": None}), params, backend


def check_session_accepts(runtime_session: RuntimeSession | None, session_id: str, backend: str) -> None:
    """A job may join a session that exists, accepts jobs and runs on the job's backend."""
    if runtime_session is None:
        raise InvalidInput(ErrorCode.SESSION_NOT_FOUND, f"Session {session_id} was not found.")
    if runtime_session.state == SessionState.CLOSED:
        raise Conflict(
            ErrorCode.SESSION_CLOSED,
            f"Job is part of a session that's been closed: session {session_id} is closed.",
        )
    if not runtime_session.accepting_jobs:
        raise Conflict(
            ErrorCode.SESSION_CLOSED,
            f"Session {session_id} is closing and accepts no new jobs; create a new session.",
        )
    if runtime_session.backend != backend:
        raise InvalidInput(
            ErrorCode.SESSION_BACKEND_MISMATCH,
            f"Session {session_id} runs on {runtime_session.backend}, not on {backend}.",
        )
