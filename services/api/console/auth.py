"""Signing in to the console: an API key is exchanged for the API's own access token, kept in an
HttpOnly, SameSite=Strict cookie scoped to /console. Every action is a POST carrying a CSRF token
bound to that cookie (an HMAC of it under the signing secret), and its Origin, when sent, must be
this server. Signing in itself is protected by a double-submit token (cookie and form field)."""

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlparse

from fastapi import Request
from fastapi.responses import Response

from services.api.dependencies import context
from shared.db.engine import unit_of_work
from shared.db.repositories.identity import IdentityRepository
from shared.identity.service import Principal
from shared.kit.errors import Forbidden, QRuntimeError

SESSION_COOKIE = "qrt_console"
LOGIN_COOKIE = "qrt_console_login"
# The CRN of the instance the console acts in, for users of several (as the API's Service-CRN header).
INSTANCE_COOKIE = "qrt_console_instance"
COOKIE_PATH = "/console"


class SignInRequired(Exception):
    """No valid console cookie: the page answers with a redirect to the sign-in form."""


def csrf_token(request: Request) -> str:
    token = request.cookies.get(SESSION_COOKIE, "")
    secret = context(request).settings.signing_secret.encode()
    return hmac.new(secret, b"console-csrf:" + token.encode(), hashlib.sha256).hexdigest()


async def signed_in(request: Request) -> Principal:
    cached: Principal | None = getattr(request.state, "console_principal", None)
    if cached is not None:
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    ctx = context(request)
    try:
        try:
            principal = await ctx.identity.authenticate(
                f"Bearer {token}", request.cookies.get(INSTANCE_COOKIE)
            )
        except Forbidden:  # no longer a member of the chosen instance: as if none was chosen
            principal = await ctx.identity.authenticate(f"Bearer {token}", None)
    except QRuntimeError as exc:
        if exc.status == 401:
            raise SignInRequired() from exc
        raise
    async with unit_of_work(ctx.sessions) as session:
        mine = await IdentityRepository(session).instances_of(principal.user_id)
    request.state.console_instances = [(i.crn, i.name) for i in mine]
    request.state.console_principal = principal
    return principal


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or an old one: the CSRF token still has to match
        return
    # Host only: behind a proxy that ends TLS the scheme seen here is not the browser's.
    if urlparse(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("This action must come from a console page of this server.")


async def read_form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode(errors="replace")
    return {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}


async def checked_form(request: Request) -> tuple[Principal, dict[str, str]]:
    """The signed-in caller and the action's form, once its Origin and CSRF token are verified."""
    principal = await signed_in(request)
    _check_origin(request)
    form = await read_form(request)
    if not hmac.compare_digest(form.get("csrf", ""), csrf_token(request)):
        raise Forbidden("The form has expired or did not come from this console; reload the page and retry.")
    return principal, form


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def check_login_nonce(request: Request, form: dict[str, str]) -> None:
    _check_origin(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(form.get("csrf", ""), cookie):
        raise Forbidden("The sign-in form has expired; reload the page and sign in again.")


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict")
