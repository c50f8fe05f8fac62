"""The routes outside /api/v1 in-process: the token exchange, probes, metrics, the event contract,
and the one error shape for unknown routes and methods."""

import time

import httpx
import jwt
import pytest

from tests.endpoints.conftest import refusal as refused
from tests.stack import TEST_JWT_SECRET

GRANT = "urn:ibm:params:oauth:grant-type:apikey"


async def test_token_exchange_and_bearer_tokens(client, people):
    form = {"grant_type": GRANT, "apikey": people.alice.api_key}
    issued = await client.post("/identity/token", data=form)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert issued.json()["expires_in"] > 0
    bearer = {"Authorization": f"Bearer {token}", "Service-CRN": people.alice.instance.crn}
    assert (await client.get("/api/v1/jobs", headers=bearer)).status_code == 200


async def test_token_exchange_refusals(client, people):
    refused(
        await client.post("/identity/token", data={"grant_type": "password", "apikey": "x"}), 400, 1200, GRANT
    )
    refused(await client.post("/identity/token", data={"grant_type": GRANT}), 400, 1200)
    refused(await client.post("/identity/token", data={"grant_type": GRANT, "apikey": "qrt_0_0"}), 401, 3201)
    refused(await client.post("/identity/token", data={"grant_type": GRANT, "apikey": "garbage"}), 401, 3201)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-jwt",
        "Bearer "
        + jwt.encode({"sub": "u", "kid": "k", "iat": 1, "exp": 2, "iss": "qruntime"}, TEST_JWT_SECRET),
        "Bearer "
        + jwt.encode({"sub": "u", "kid": "k", "iat": 1, "exp": 4102444800, "iss": "qruntime"}, "wrong" * 8),
        "apikey qrt_0000000000000000_" + "0" * 64,
        "Basic dXNlcjpwYXNz",
        "",
    ],
    ids=["garbage", "expired", "wrong-signature", "unknown-key", "wrong-scheme", "none"],
)
async def test_bad_or_expired_credentials_are_401(client, authorization):
    # A key that names no active key is 3201 (as on /identity/token); everything else 3200.
    code = 3201 if authorization.startswith("apikey") else 3200
    refused(await client.get("/api/v1/jobs", headers={"Authorization": authorization}), 401, code)


async def test_a_token_of_a_revoked_key_stops_working(client, people, db):
    from shared.db.repositories.identity import IdentityRepository

    token = (
        await client.post("/identity/token", data={"grant_type": GRANT, "apikey": people.bob.api_key})
    ).json()
    key_id = jwt.decode(token["access_token"], options={"verify_signature": False})["kid"]
    await IdentityRepository(db).revoke_key(key_id)
    await db.commit()
    refused(
        await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token['access_token']}"}),
        401,
        3200,
        "revoked",
    )
    assert int(time.time()) < token["expiration"]


async def test_probes_metrics_and_event_contract(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    # The database answers; no relay runs in-process, so the broker check is false and the api not ready.
    assert ready.status_code == 503 and ready.json()["checks"] == {
        "database": True,
        "broker": False,
        "parsers": True,
    }
    # Metrics are not on the API port (no token configured); they are on a listener of their own.
    assert (await client.get("/metrics")).status_code == 404
    from services.api.metrics import metrics_app

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=metrics_app()), base_url="http://metrics.test"
    ) as scraper:
        metrics = await scraper.get("/metrics")
    assert metrics.status_code == 200 and "qruntime_http_requests_total" in metrics.text
    contract = (await client.get("/asyncapi.json")).json()
    assert contract["asyncapi"].startswith("2.") and contract["channels"]


async def test_unknown_routes_and_methods_have_the_error_shape(client, people):
    refused(await client.get("/api/v1/nowhere", headers=people.alice.headers), 404, 1200, "No such resource")
    refused(await client.patch("/api/v1/jobs", headers=people.alice.headers), 405, 1200)
    experimental = await client.get("/experimental/api/v1/jobs", headers=people.alice.headers)
    assert experimental.status_code == 200 and experimental.json()["count"] == 0


async def test_an_unreachable_database_is_503_not_500(api_settings, parse_pool):
    import httpx
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from services.api.app import build_context, create_app

    dead = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    app = create_app(api_settings)
    app.state.context = build_context(api_settings, dead, async_sessionmaker(dead), parse_pool)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://q.test"
        ) as http:
            response = await http.get("/api/v1/jobs", headers={"Authorization": "apikey qrt_a_b"})
            refused(response, 503, 9001, "retry")
            assert (await http.get("/readyz")).json()["checks"]["database"] is False
    finally:
        await dead.dispose()


async def test_a_remembered_token_is_not_verified_again_until_it_expires(app, client, people, monkeypatch):
    """With the authentication cache on, a bearer token's signature is verified once; later requests
    with the same header check only its expiry, and once that has passed the token is verified again
    (which refuses an expired token: test_bad_or_expired_credentials_are_401). The cache's clock is
    moved, not waited for, so a slow machine cannot race the token's lifetime."""
    import shared.identity.service as identity_service
    from shared.identity.tokens import issue_token

    identity = app.state.context.identity
    identity.principals.ttl = 60.0
    verified: list[str] = []
    verify = identity_service.verify_token

    def counting_verify(token: str, secret: str):  # type: ignore[no-untyped-def]
        verified.append(token)
        return verify(token, secret)

    monkeypatch.setattr(identity_service, "verify_token", counting_verify)
    key_id = people.alice.api_key.split("_")[1]
    token, _, expires = issue_token(people.alice.user.id, key_id, TEST_JWT_SECRET, ttl_seconds=3600)
    bearer = {"Authorization": f"Bearer {token}", "Service-CRN": people.alice.instance.crn}
    for _ in range(3):
        assert (await client.get("/api/v1/jobs", headers=bearer)).status_code == 200
    assert verified == [token]  # once, for the first request

    class AfterExpiry:
        @staticmethod
        def time() -> float:
            return expires + 1.0

    monkeypatch.setattr(identity_service, "time", AfterExpiry)
    assert (await client.get("/api/v1/jobs", headers=bearer)).status_code == 200  # still valid for PyJWT
    assert verified == [token, token]  # past its expiry the cache did not answer: verified again
