"""API keys and access tokens (pure functions: no I/O).

A key reads `qrt_<key id>_<secret>`: the id finds the row, the secret is compared by hash in
constant time. Access tokens are HS256 JWTs with `sub` (user id), `kid` (the key that obtained it),
`iat` and `exp`, which the official client decodes without verifying.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

KEY_PREFIX = "qrt"


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret: str


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    key_id: str
    expires_at: int


class InvalidToken(Exception):
    pass


def new_api_key() -> tuple[str, str, str]:
    """(key id, plain key to show once, hash to store)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_hex(32)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(plain: str) -> ParsedKey | None:
    parts = plain.strip().split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return ParsedKey(key_id=parts[1], secret=parts[2])


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def issue_token(user_id: str, key_id: str, signing_secret: str, ttl_seconds: int) -> tuple[str, int, int]:
    """(JWT, issued-at, expires-at)."""
    issued = int(time.time())
    expires = issued + ttl_seconds
    token = jwt.encode(
        {"sub": user_id, "kid": key_id, "iat": issued, "exp": expires, "iss": "qruntime"},
        signing_secret,
        algorithm="HS256",
    )
    return token, issued, expires


def verify_token(token: str, signing_secret: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            signing_secret,
            algorithms=["HS256"],
            options={"require": ["sub", "kid", "iat", "exp"]},
            issuer="qruntime",
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("the access token has expired; request a new one") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("the access token is not valid") from exc
    return TokenClaims(user_id=str(claims["sub"]), key_id=str(claims["kid"]), expires_at=int(claims["exp"]))
