"""The web console under /console: server-rendered pages (Jinja2), live through Server-Sent Events,
every asset served from this package (nothing is fetched from another server)."""

import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.api.dependencies import AppContext, context
from services.api.events.router import SSE_HEADERS, _resume_point, event_stream
from services.api.experiments.schemas import normalize_path
from services.api.jobs.service import JobService
from services.api.sessions.schemas import SessionUpdate
from services.api.sessions.service import RuntimeSessionService
from shared.identity.service import Principal
from shared.kit.errors import ErrorCode, Forbidden, InvalidInput, QRuntimeError

from . import auth
from .experiments import ConsoleExperiments
from .service import MODE_CHOICES, STATUS_CHOICES, TIME_RANGES, ConsoleService, WorkloadQuery, status_name

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(status_name=status_name)

router = APIRouter(prefix="/console", include_in_schema=False)

# Nothing but this server: scripts, styles, images, connections and form targets.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

P = ParamSpec("P")


def service(request: Request) -> ConsoleService:
    return ConsoleService(context(request))


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    principal: Principal | None = getattr(request.state, "console_principal", None)
    values.setdefault("principal", principal)
    values.setdefault("csrf", auth.csrf_token(request) if principal else "")
    values.setdefault("active", "")
    values.setdefault("status", status_code)
    values.setdefault("instances", getattr(request.state, "console_instances", []))
    response = templates.TemplateResponse(request, template, values, status_code=status_code)
    started = getattr(request.state, "console_started", None)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    response.headers.update(SECURITY_HEADERS)
    return response  # type: ignore[no-any-return]


def page(endpoint: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Console endpoints answer refusals with an HTML page of the same status and code, and send a
    visitor who is not signed in to the sign-in form."""

    @functools.wraps(endpoint)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs.get("request")
        assert isinstance(request, Request)
        request.state.console_started = time.perf_counter()
        try:
            return await endpoint(*args, **kwargs)
        except auth.SignInRequired:
            if request.method == "GET" and not request.headers.get("x-console-fragment"):
                return RedirectResponse("/console/login", status_code=303)
            return render(
                request, "error.html", 401, code=int(ErrorCode.UNAUTHORIZED), message="Sign in again."
            )
        except QRuntimeError as exc:
            return render(request, "error.html", exc.status, code=int(exc.code), message=exc.message)

    return wrapper


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- signing in and out ----------------------------------------------------------------------------


@router.get("/login")
@page
async def login_form(request: Request) -> Response:
    nonce = auth.new_login_nonce()
    response = render(request, "login.html", login_csrf=nonce, principal=None, csrf="")
    auth.set_cookie(request, response, auth.LOGIN_COOKIE, nonce, max_age=3600)
    return response


@router.post("/login")
@page
async def login(request: Request) -> Response:
    form = await auth.read_form(request)
    auth.check_login_nonce(request, form)
    key = form.get("apikey", "").strip()
    try:
        issued = await context(request).identity.exchange_key(key)
    except QRuntimeError as exc:
        nonce = auth.new_login_nonce()
        response = render(
            request, "login.html", exc.status, login_csrf=nonce, error=exc.message, principal=None, csrf=""
        )
        auth.set_cookie(request, response, auth.LOGIN_COOKIE, nonce, max_age=3600)
        return response
    redirect = see_other("/console/workloads")
    auth.set_cookie(request, redirect, auth.SESSION_COOKIE, issued.access_token, issued.expires_in)
    auth.clear_cookie(redirect, auth.LOGIN_COOKIE)
    return redirect


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    await auth.checked_form(request)
    response = see_other("/console/login")
    auth.clear_cookie(response, auth.SESSION_COOKIE)
    return response


@router.post("/instance")
@page
async def choose_instance(request: Request) -> Response:
    """Users of several instances choose the one the console acts in (new jobs and reruns)."""
    _, form = await auth.checked_form(request)
    crn = form.get("crn", "")
    if crn not in [c for c, _ in request.state.console_instances]:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, "You are not a member of that instance.")
    redirect = see_other("/console/workloads")
    auth.set_cookie(request, redirect, auth.INSTANCE_COOKIE, crn, max_age=30 * 86400)
    return redirect


# --- workloads -------------------------------------------------------------------------------------


@router.get("")
async def console_home() -> Response:
    return see_other("/console/workloads")


async def _workloads(request: Request, template: str) -> Response:
    principal = await auth.signed_in(request)
    query = WorkloadQuery.parse(dict(request.query_params))
    found = await service(request).workloads(query, principal)
    return render(
        request,
        template,
        active="workloads",
        query=query,
        found=found,
        page_size=25,
        statuses=STATUS_CHOICES,
        modes=MODE_CHOICES,
        ranges=list(TIME_RANGES),
        backends=list(context(request).backends.catalog),
    )


@router.get("/workloads")
@page
async def workloads(request: Request) -> Response:
    return await _workloads(request, "workloads.html")


@router.get("/workloads/rows")
@page
async def workload_rows(request: Request) -> Response:
    return await _workloads(request, "_workload_rows.html")


@router.get("/events")
@page
async def my_events(request: Request) -> Response:
    principal = await auth.signed_in(request)
    after = request.query_params.get("after", "")
    last = request.headers.get("last-event-id")
    start = _resume_point(last) if last else _resume_point(after or None)
    frames = service(request).event_stream(principal, start)
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


# --- jobs and sessions ----------------------------------------------------------------------------


def _page_or_body(request: Request, name: str, active: str, shown: Any) -> Response:
    """A detail page, or at its path + /body the body alone: what the page fetches again when its
    events say that it changed."""
    if request.url.path.endswith("/body"):
        return render(request, f"_{name}_body.html", page=shown)
    return render(request, f"{name}.html", active=active, page=shown)


def _workload_routes(
    kind: str,
    show: Callable[[ConsoleService, str, Principal], Awaitable[Any]],
    api: Callable[[AppContext], JobService | RuntimeSessionService],
    **view_options: bool,
) -> None:
    """A job's or a session's page (loaded by `show`), its body, its events and its cancel button,
    alike for both kinds; `api` is the kind's API service, whose `view` answers the page's 404."""
    path = f"/{kind}s/{{object_id}}"

    @router.get(path)
    @router.get(f"{path}/body")
    @page
    async def detail(object_id: str, request: Request) -> Response:
        principal = await auth.signed_in(request)
        return _page_or_body(request, kind, "workloads", await show(service(request), object_id, principal))

    @router.get(f"{path}/events")
    @page
    async def events(object_id: str, request: Request) -> Response:
        principal = await auth.signed_in(request)
        await api(context(request)).view(object_id, principal, **view_options)
        last = request.headers.get("last-event-id")
        return event_stream(request, principal.user_id, kind, object_id, last)

    @router.post(f"{path}/cancel")
    @page
    async def cancel_it(object_id: str, request: Request) -> Response:
        principal, _ = await auth.checked_form(request)
        await api(context(request)).cancel(object_id, principal)
        return see_other(f"/console/{kind}s/{object_id}")


# A job's events need not load its parameters (they can be large) to check that it may be seen.
_workload_routes("job", ConsoleService.job, lambda ctx: ctx.jobs, exclude_params=True)
_workload_routes("session", ConsoleService.session, lambda ctx: ctx.runtime_sessions)


@router.post("/jobs/{job_id}/rerun")
@page
async def rerun_job(job_id: str, request: Request) -> Response:
    principal, _ = await auth.checked_form(request)
    if principal.instance_id is None:
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            "You belong to several instances (or none): choose the one to run in at the top of the page.",
        )
    created = await context(request).jobs.rerun(job_id, principal)
    return see_other(f"/console/jobs/{created.id}")


@router.post("/sessions/{session_id}/close")
@page
async def close_session(session_id: str, request: Request) -> Response:
    principal, _ = await auth.checked_form(request)
    update = SessionUpdate(accepting_jobs=False)
    await context(request).runtime_sessions.update(session_id, update, principal)
    return see_other(f"/console/sessions/{session_id}")


# --- backends and usage ----------------------------------------------------------------------------


@router.get("/backends")
@page
async def backends(request: Request) -> Response:
    await auth.signed_in(request)
    rows = await service(request).backends()
    return render(request, "backends.html", active="backends", rows=rows)


@router.get("/usage")
@page
async def usage(request: Request) -> Response:
    principal = await auth.signed_in(request)
    return render(request, "usage.html", active="usage", rows=await service(request).usage(principal))


# --- experiments -----------------------------------------------------------------------------------


def _experiments(request: Request) -> ConsoleExperiments:
    return ConsoleExperiments(context(request).experiments)


@router.get("/experiments")
@page
async def experiments(request: Request) -> Response:
    principal = await auth.signed_in(request)
    tree = await _experiments(request).tree(principal)
    return render(request, "experiments.html", active="experiments", tree=tree)


@router.get("/sequence")
@router.get("/sequence/body")
@page
async def sequence_page(request: Request, path: str = "") -> Response:
    principal = await auth.signed_in(request)
    shown = await _experiments(request).sequence(path, principal)
    return _page_or_body(request, "sequence", "experiments", shown)


@router.get("/sequence/events")
@page
async def sequence_events(request: Request, path: str = "") -> Response:
    principal = await auth.signed_in(request)
    sequence = await context(request).experiments.view_sequence(principal, normalize_path(path))  # 404
    return event_stream(
        request, principal.user_id, "sequence", sequence["id"], request.headers.get("last-event-id")
    )


# --- administration --------------------------------------------------------------------------------


async def _admin(request: Request) -> Principal:
    principal = await auth.signed_in(request)
    if not principal.is_admin:
        raise Forbidden("This page is for administrators.")
    return principal


async def _admin_action(request: Request) -> dict[str, str]:
    await _admin(request)
    _, form = await auth.checked_form(request)
    return form


@router.get("/admin")
@page
async def admin(request: Request) -> Response:
    await _admin(request)
    shown = await service(request).admin()
    return render(request, "admin.html", active="admin", page=shown)


@router.post("/admin/users")
@page
async def admin_create_user(request: Request) -> Response:
    form = await _admin_action(request)
    role = "admin" if form.get("admin") == "on" else "user"
    await context(request).identity.create_user(form.get("name", "").strip(), role)
    return see_other("/console/admin")


@router.post("/admin/keys")
@page
async def admin_create_key(request: Request) -> Response:
    form = await _admin_action(request)
    key, plain = await context(request).identity.create_key(form.get("user", "").strip())
    shown = await service(request).admin()
    shown.new_key = plain
    shown.notice = f"Key {key.id} created. Copy it now: it is not shown again."
    return render(request, "admin.html", 201, active="admin", page=shown)


@router.post("/admin/keys/{key_id}/revoke")
@page
async def admin_revoke_key(key_id: str, request: Request) -> Response:
    await _admin_action(request)
    await context(request).identity.revoke_key(key_id)
    return see_other("/console/admin")


def _optional_number(form: dict[str, str], name: str) -> float | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{name} must be a number or empty.") from exc


@router.post("/admin/instances")
@page
async def admin_create_instance(request: Request) -> Response:
    form = await _admin_action(request)
    jobs = _optional_number(form, "max_concurrent_jobs")
    await context(request).identity.create_instance(
        form.get("name", "").strip(),
        _optional_number(form, "usage_allocation_seconds"),
        None if jobs is None else int(jobs),
    )
    return see_other("/console/admin")


@router.post("/admin/instances/{instance_id}/limits")
@page
async def admin_set_limits(instance_id: str, request: Request) -> Response:
    form = await _admin_action(request)
    changes: dict[str, float | int | None] = {
        "usage_allocation_seconds": _optional_number(form, "usage_allocation_seconds"),
        "max_concurrent_jobs": _optional_number(form, "max_concurrent_jobs"),
    }
    await context(request).identity.set_limits(instance_id, changes)
    return see_other("/console/admin")


@router.post("/admin/instances/{instance_id}/members")
@page
async def admin_add_member(instance_id: str, request: Request) -> Response:
    form = await _admin_action(request)
    await context(request).identity.add_member(instance_id, form.get("user", "").strip())
    return see_other("/console/admin")


def install_console(app: FastAPI) -> None:
    """Serve the console and its static assets from this package."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
