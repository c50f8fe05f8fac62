"""The IAM-style token exchange the official client performs (`POST {IAM_URL}/identity/token`)."""

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import guarded
from services.api.dependencies import context
from shared.kit.errors import ErrorCode, InvalidInput

router = APIRouter(tags=["identity"], route_class=DocumentedRoute)

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"


class TokenRequest(BaseModel):
    """The form body (application/x-www-form-urlencoded) of the IAM apikey grant."""

    grant_type: str = Field(description=f"always {APIKEY_GRANT}", examples=[APIKEY_GRANT])
    apikey: str = Field(description="your qruntime API key, qrt_<id>_<secret>")


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    expiration: int


@router.post(
    "/identity/token",
    **documented(
        example={
            "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6IjljMWU3YTJiNGQ2ZjhlMGEiLCJ0eXAiOiJKV1QifQ.<claims>.<signature>",
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": 3600,
            "expiration": 1796006400,
        },
        request_model=TokenRequest,
        request_media_type="application/x-www-form-urlencoded",
        request_example={"grant_type": APIKEY_GRANT, "apikey": "qrt_9c1e7a2b4d6f8e0a_<secret>"},
        refusals=[ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_API_KEY],
    ),
)
async def exchange_api_key(request: Request) -> TokenResponse:
    """Exchange an API key for an access token

    The IAM apikey grant the official client performs against $IAM_URL/identity/token: a form body with
    grant_type and apikey, no Authorization header. Send the token as `Authorization: Bearer <token>` until
    `expiration` (Unix seconds).
    """
    # Form-encoded, no Authorization header: exactly what ibm-cloud-sdk-core's IAMTokenManager sends.
    form = parse_qs((await request.body()).decode(errors="replace"))
    grant = form.get("grant_type", [""])[0]
    apikey = form.get("apikey", [""])[0]
    if grant != APIKEY_GRANT or not apikey:
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"Send a form body with grant_type={APIKEY_GRANT} and apikey=<your API key>.",
        )
    issued = await guarded(request, apikey, context(request).identity.exchange_key(apikey))
    return TokenResponse(
        access_token=issued.access_token,
        # The client stores a refresh token but never uses it; it asks for a new grant instead.
        refresh_token="not_supported",
        expires_in=issued.expires_in,
        expiration=issued.expires_at,
    )
