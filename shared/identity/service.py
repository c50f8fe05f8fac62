"""Rules of identity and tenancy, shared by the API and the `qruntime admin` command."""

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import single_statement, unit_of_work
from shared.db.models import ApiKey, Instance, User
from shared.db.repositories.identity import IdentityRepository
from shared.identity.cache import TtlCache
from shared.identity.tokens import (
    InvalidToken,
    TokenClaims,
    issue_token,
    new_api_key,
    parse_api_key,
    secret_matches,
    verify_token,
)
from shared.kit.errors import Conflict, ErrorCode, Forbidden, InvalidInput, NotFound, Unauthorized
from shared.kit.settings import Settings

ROLES = ("user", "admin")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}\Z")
Named = TypeVar("Named", User, Instance)


@dataclass(frozen=True)
class Principal:
    """Who is calling, and on behalf of which instance."""

    user_id: str
    user_name: str
    is_admin: bool
    instance_id: str | None
    instance_crn: str | None

    def may_see(self, owner_id: str | None) -> bool:
        """Whether this caller may see what `owner_id` owns: its owner, or an administrator."""
        return self.is_admin or owner_id == self.user_id


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    issued_at: int
    expires_at: int

    @property
    def expires_in(self) -> int:
        """Seconds the token is valid for, from its issue."""
        return self.expires_at - self.issued_at


@dataclass(frozen=True)
class Usage:
    consumed_seconds: float
    allocation_seconds: float | None

    @property
    def limit_reached(self) -> bool:
        return self.allocation_seconds is not None and self.consumed_seconds >= self.allocation_seconds


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            ErrorCode.INVALID_REQUEST,
            f"A {what} name must be 1-128 letters, digits or . _ @ - and start with a letter or digit.",
        )
    return name


def _refuse_api_key_as_bearer(token: str) -> None:
    if parse_api_key(token) is not None:
        raise Unauthorized(
            "This is an API key, not an access token: send it as 'Authorization: apikey <API key>', "
            "or exchange it for a token at POST /identity/token."
        )


class IdentityService:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        # Successful authentications only, for at most auth_cache_seconds (see shared/identity/cache.py),
        # each with its access token's expiry (None for an API key).
        self.principals: TtlCache[tuple[Principal, int | None]] = TtlCache(settings.auth_cache_seconds)

    def crn_for(self, instance_id: str) -> str:
        s = self.settings
        return f"crn:v1:qruntime:public:quantum-computing:{s.region}:a/{s.account}:{instance_id}::"

    # --- administration -------------------------------------------------------------------

    async def _add_named(self, row: Named, which: str) -> Named:
        """Store a new user or instance; its name is unique, so a taken one is a conflict."""
        try:
            async with unit_of_work(self.sessions) as session:
                await IdentityRepository(session).add(row)
        except IntegrityError as exc:
            raise Conflict(ErrorCode.ALREADY_EXISTS, f"{which} already exists.") from exc
        return row

    async def create_user(self, name: str, role: str = "user") -> User:
        if role not in ROLES:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, f"role must be one of {', '.join(ROLES)}.")
        user = User(id=secrets.token_hex(8), name=_check_name(name, "user"), role=role, active=True)
        return await self._add_named(user, f"A user named {name}")

    async def create_key(self, user_ref: str) -> tuple[ApiKey, str]:
        """A new key for the user (by name or id); the plain key is returned once and never stored."""
        key_id, plain, secret_hash = new_api_key()
        async with unit_of_work(self.sessions) as session:
            repo = IdentityRepository(session)
            user = await self._user(repo, user_ref)
            key = ApiKey(id=key_id, user_id=user.id, secret_hash=secret_hash)
            await repo.add(key)
        return key, plain

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke by key id; a whole key (qrt_<id>_<secret>) is reduced to its id, so that no message
        ever repeats its secret."""
        parsed = parse_api_key(key_id)
        if parsed is not None:
            key_id = parsed.key_id
        elif not key_id.isalnum():
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST, "Give the key id: the middle part of qrt_<id>_<secret>."
            )
        async with unit_of_work(self.sessions) as session:
            repo = IdentityRepository(session)
            revoked = await repo.revoke_key(key_id)
            if revoked is None:
                found = await repo.key_with_user(key_id)
                if found is None:
                    raise NotFound(ErrorCode.NOT_FOUND, f"API key {key_id} does not exist.")
                return found[0]  # already revoked: revoking again changes nothing
        return revoked

    async def create_instance(
        self, name: str, allocation_seconds: float | None = None, max_concurrent_jobs: int | None = None
    ) -> Instance:
        if allocation_seconds is not None and allocation_seconds < 0:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, "The usage allocation cannot be negative.")
        if max_concurrent_jobs is not None and max_concurrent_jobs < 1:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, "max_concurrent_jobs must be at least 1.")
        instance_id = secrets.token_hex(6)
        instance = Instance(
            id=instance_id,
            name=_check_name(name, "instance"),
            crn=self.crn_for(instance_id),
            usage_allocation_seconds=allocation_seconds,
            max_concurrent_jobs=max_concurrent_jobs,
        )
        return await self._add_named(instance, f"An instance named {name}")

    async def set_limits(self, instance_ref: str, changes: dict[str, float | int | None]) -> Instance:
        """Change an instance's limits: keys present in `changes` are set (None removes a limit)."""
        allocation = changes.get("usage_allocation_seconds")
        max_jobs = changes.get("max_concurrent_jobs")
        if allocation is not None and allocation < 0:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, "The usage allocation cannot be negative.")
        if max_jobs is not None and (max_jobs < 1 or max_jobs != int(max_jobs)):
            raise InvalidInput(
                ErrorCode.INVALID_REQUEST, "max_concurrent_jobs must be a whole number of at least 1."
            )
        async with unit_of_work(self.sessions) as session:
            instance = await self._instance(IdentityRepository(session), instance_ref)
            if "usage_allocation_seconds" in changes:
                instance.usage_allocation_seconds = None if allocation is None else float(allocation)
            if "max_concurrent_jobs" in changes:
                instance.max_concurrent_jobs = None if max_jobs is None else int(max_jobs)
        return instance

    async def add_member(self, instance_ref: str, user_ref: str) -> tuple[Instance, User]:
        async with unit_of_work(self.sessions) as session:
            repo = IdentityRepository(session)
            instance = await self._instance(repo, instance_ref)
            user = await self._user(repo, user_ref)
            await repo.add_member(instance.id, user.id)
        return instance, user

    async def list_users(self) -> list[User]:
        async with unit_of_work(self.sessions) as session:
            return await IdentityRepository(session).users()

    async def list_instances(self) -> list[Instance]:
        async with unit_of_work(self.sessions) as session:
            return await IdentityRepository(session).instances()

    async def has_users(self) -> bool:
        async with unit_of_work(self.sessions) as session:
            return await IdentityRepository(session).count_users() > 0

    async def _user(self, repo: IdentityRepository, ref: str) -> User:
        user = await repo.user_by_name(ref) or await repo.user(ref)
        if user is None:
            raise NotFound(ErrorCode.NOT_FOUND, f"User {ref} does not exist.")
        return user

    async def _instance(self, repo: IdentityRepository, ref: str) -> Instance:
        instance = (
            await repo.instance_by_name(ref) or await repo.instance_by_crn(ref) or await repo.instance(ref)
        )
        if instance is None:
            raise NotFound(ErrorCode.NOT_FOUND, f"Instance {ref} does not exist.")
        return instance

    # --- authentication ---------------------------------------------------------------------

    async def exchange_key(self, plain_key: str) -> IssuedToken:
        """The IAM-style grant: an API key for a short-lived access token."""
        async with unit_of_work(self.sessions) as session:
            repo = IdentityRepository(session)
            key, user = await self._valid_key(repo, plain_key, ErrorCode.INVALID_API_KEY)
            await repo.touch_key(key.id)
        token, issued, expires = issue_token(
            user.id, key.id, self.settings.signing_secret, self.settings.token_ttl_seconds
        )
        return IssuedToken(access_token=token, issued_at=issued, expires_at=expires)

    def remembered(self, authorization: str | None, service_crn: str | None) -> Principal | None:
        """The caller these headers authenticated within the last `QRUNTIME_AUTH_CACHE_SECONDS`, if
        their authentication is remembered and its token has not expired; None otherwise."""
        remembered = self.principals.get(_remembered_as(authorization, service_crn))
        # A remembered token had its signature verified when it was remembered (the key is this very
        # header): only its expiry is left to check, and an expired token is refused at once.
        if remembered is not None and (remembered[1] is None or time.time() < remembered[1]):
            return remembered[0]
        return None

    async def authenticate(self, authorization: str | None, service_crn: str | None) -> Principal:
        principal = self.remembered(authorization, service_crn)
        if principal is not None:
            return principal
        claims: TokenClaims | None = None
        scheme, _, credential = (authorization or "").strip().partition(" ")
        credential = credential.strip()
        if not credential or scheme.lower() not in ("bearer", "apikey"):
            raise Unauthorized(
                "Send 'Authorization: apikey <API key>', or 'Authorization: Bearer <access token>' "
                "with a token from POST /identity/token."
            )
        if scheme.lower() == "bearer":
            _refuse_api_key_as_bearer(credential)
            try:
                claims = verify_token(credential, self.settings.signing_secret)
            except InvalidToken as exc:
                raise Unauthorized(f"Authentication failed: {exc}.") from exc
        principal = await self._authenticate(credential, claims, service_crn)
        self.principals.put(
            _remembered_as(authorization, service_crn), (principal, claims.expires_at if claims else None)
        )
        return principal

    async def _authenticate(
        self, credential: str, claims: TokenClaims | None, service_crn: str | None
    ) -> Principal:
        """The caller of a verified token (`claims`), or of the API key `credential`."""
        async with unit_of_work(self.sessions) as session:
            repo = IdentityRepository(session)
            if claims is None:
                _, user = await self._valid_key(repo, credential, ErrorCode.INVALID_API_KEY)
            else:
                user = await self._user_of_token(repo, claims)
            instance = await self._instance_for(repo, user, service_crn)
        return Principal(
            user_id=user.id,
            user_name=user.name,
            is_admin=user.role == "admin",
            instance_id=instance.id if instance else None,
            instance_crn=instance.crn if instance else None,
        )

    async def _valid_key(self, repo: IdentityRepository, plain: str, code: ErrorCode) -> tuple[ApiKey, User]:
        parsed = parse_api_key(plain)
        found = await repo.key_with_user(parsed.key_id) if parsed else None
        # Compare even when the key id is unknown, so timing does not tell which ids exist.
        stored_hash = found[0].secret_hash if found else "0" * 64
        matches = secret_matches(parsed.secret if parsed else "", stored_hash)
        if found is None or not matches or found[0].revoked_at is not None or not found[1].active:
            raise Unauthorized("The API key is not valid, or it was revoked.", code)
        return found

    async def _user_of_token(self, repo: IdentityRepository, claims: TokenClaims) -> User:
        found = await repo.key_with_user(claims.key_id)
        if (
            found is None
            or found[0].revoked_at is not None
            or not found[1].active
            or found[1].id != claims.user_id
        ):
            raise Unauthorized("Authentication failed: the API key behind this token was revoked.")
        return found[1]

    async def _instance_for(self, repo: IdentityRepository, user: User, crn: str | None) -> Instance | None:
        if crn:
            instance = await repo.instance_by_crn(crn.strip())
            if instance is None or (user.role != "admin" and not await repo.is_member(instance.id, user.id)):
                raise Forbidden(f"You are not a member of the instance {crn.strip()}.")
            return instance
        # Without a Service-CRN header (curl users), a user of exactly one instance acts in it.
        mine = await repo.instances_of(user.id)
        return mine[0] if len(mine) == 1 else None

    # --- usage --------------------------------------------------------------------------------

    def usage_window_start(self) -> datetime:
        return datetime.now(UTC) - timedelta(days=self.settings.usage_window_days)

    async def usage(self, instance_id: str) -> Usage:
        async with single_statement(self.sessions) as session:
            found = await IdentityRepository(session).allocation_and_usage(
                instance_id, self.usage_window_start()
            )
        if found is None:
            raise NotFound(ErrorCode.NOT_FOUND, "The instance does not exist.")
        allocation, consumed = found
        return Usage(consumed_seconds=consumed, allocation_seconds=allocation)


def _remembered_as(authorization: str | None, service_crn: str | None) -> tuple[str, str]:
    # The credential is kept only as a hash, even in memory.
    return hashlib.sha256((authorization or "").encode()).hexdigest(), service_crn or ""
