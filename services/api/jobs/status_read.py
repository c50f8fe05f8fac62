"""The status poll and the result read, answered before FastAPI's routing (decisions 40 and 50).

Clients read `GET /api/v1/jobs/{id}` over and over while a job runs: qiskit-ibm-runtime's
`job.status()` and `job.result()`, and every script's wait loop. Through FastAPI's router, its
dependency solving and its response handling a read cost the api about 1.05 ms of CPU, a fifth of
it the read and the JSON. This middleware answers the plain case of that route itself, with the
body the route would give: an authentication remembered from an earlier request (so no credential
is checked here, and no failure can be counted twice), no `wait`, at most `exclude_params=true` or
`false`, the job found and the caller's. Like the route, it holds the read of a dispatched job for
the job's end as long as the linger (decision 47). Every other request, and any failure on the way,
goes on to the route, which answers it as always. It sits inside the api's own middlewares, so the
request is counted, logged and bounded like any other.

A client reads a completed job's result once (`job.result()`), right after the poll that saw it
completed. Through the route that read cost a unit of work (BEGIN, the job, the result, COMMIT) and
the router's own work; here the plain case, `GET /api/v1/jobs/{id}/results` without a query for the
caller's completed job, is one statement reading the owner and the stored body, sent as stored.
Anything else (not completed, a failed job's error text, another's job) goes on to the route.
"""

from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.dependencies import AppContext
from services.api.middleware import HttpMiddleware

ROUTE = "/jobs/{job_id}"
RESULTS = "/results"
_PLAIN_QUERIES = {(): False, (("exclude_params", "false"),): False, (("exclude_params", "true"),): True}


class JobStatusRead(HttpMiddleware):
    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...]) -> None:
        super().__init__(app)
        self.prefixes = tuple(f"{prefix}/jobs/" for prefix in prefixes)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._answer(scope) if scope["method"] == "GET" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> bytes | None:
        """The response body of a plain status read, or None: the route answers this request."""
        path: str = scope["path"]
        prefix = next((p for p in self.prefixes if path.startswith(p)), None)
        if prefix is None:
            return None
        job_id = path[len(prefix) :]
        query = tuple(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        exclude_params = _PLAIN_QUERIES.get(query)
        wants_result = job_id.endswith(RESULTS) and not query
        if wants_result:
            job_id = job_id[: -len(RESULTS)]
        if not job_id or "/" in job_id or exclude_params is None:
            return None
        ctx: AppContext | None = getattr(scope["app"].state, "context", None)
        if ctx is None or ctx.auth_throttle.watching:
            return None  # not serving yet, or a failure is recent: the route decides what to answer
        headers = Headers(scope=scope)
        principal = ctx.identity.remembered(headers.get("authorization"), headers.get("service-crn"))
        if principal is None:
            return None
        try:
            if wants_result:
                result = await ctx.jobs.done_result(job_id, principal)
                body = None if result is None else result.encode()
            else:
                view = await ctx.jobs.view(job_id, principal, exclude_params, linger=True)
                body = view.model_dump_json(by_alias=True).encode()
        except Exception:  # not found, another's, a database error: the route answers it properly
            return None
        if body is None:
            return None
        state = scope.setdefault("state", {})
        state["principal"] = principal  # the access log's user
        # The metrics' route label
        state["route_template"] = prefix[: -len("/jobs/")] + ROUTE + (RESULTS if wants_result else "")
        return body
