"""Failed authentications: logged, and throttled per source address and per key id.

Every 401 is logged with the key id it named and the caller's address (never the secret). Within a
window (`QRUNTIME_AUTH_FAILURE_WINDOW_SECONDS`), an address that failed
`QRUNTIME_AUTH_FAILURES_PER_ADDRESS` times, or failed `QRUNTIME_AUTH_FAILURES_PER_KEY` times for
one key id, gets 429 with Retry-After (code 3202) until its failures age out. A key id attacked
from many addresses is throttled only for the addresses that failed on it: its owner, calling with
the right secret from elsewhere, is never locked out by someone else's failures.
"""

import base64
import json
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable

from shared.identity.tokens import parse_api_key
from shared.kit.errors import ErrorCode, QRuntimeError

log = logging.getLogger(__name__)

_MAX_TRACKED = 100_000
# Many failures for one key, spread over addresses: each address that failed on it then has one try.
_SPREAD_FACTOR = 10


class AuthThrottled(QRuntimeError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            ErrorCode.AUTH_THROTTLED,
            f"Too many failed authentications; try again in {retry_after} s.",
            status=429,
        )
        self.retry_after = retry_after


def key_id_of(credential: str | None) -> str:
    """The key id a credential names (an API key's middle part, an access token's `kid`), for logs
    and throttling; '-' when it names none. Never the secret."""
    text = (credential or "").strip()
    scheme, _, rest = text.partition(" ")
    if scheme.lower() in ("apikey", "bearer") and rest:
        text = rest.strip()
    parsed = parse_api_key(text)
    if parsed is not None:
        return _clean(parsed.key_id)
    parts = text.split(".")
    if len(parts) == 3:  # a JWT: its payload names the key (unverified: this is only a label)
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            return _clean(str(payload.get("kid", "-")))
        except Exception:
            return "-"
    return "-"


def _clean(value: str) -> str:
    value = "".join(c for c in value[:64] if c.isalnum() or c in "-_")
    return value or "-"


class AuthThrottle:
    def __init__(
        self,
        per_address: int,
        per_key: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.per_address = per_address
        self.per_key = per_key
        self.window = window_seconds
        self._address: dict[str, deque[float]] = defaultdict(deque)
        self._key_address: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._key: dict[str, deque[float]] = defaultdict(deque)
        self._last_failure = -math.inf

    @property
    def watching(self) -> bool:
        """Whether a failure is recent enough to throttle anyone: when not, `check` refuses no one
        and need not be asked (nor the credential's key id read for it)."""
        return self.clock() - self._last_failure <= self.window

    def check(self, address: str, key_id: str) -> None:
        """Refuse (429) before the credential is even looked at, if this caller is throttled."""
        now = self.clock()
        waits = [self._wait(self._address.get(address), self.per_address, now)]
        if key_id != "-":
            waits.append(self._wait(self._key_address.get((key_id, address)), self.per_key, now))
            failed_here = bool(self._key_address.get((key_id, address)))
            if failed_here:
                waits.append(self._wait(self._key.get(key_id), self.per_key * _SPREAD_FACTOR, now))
        wait = max(waits)
        if wait > 0:
            raise AuthThrottled(math.ceil(wait))

    def failed(self, address: str, key_id: str, reason: str) -> None:
        log.warning("authentication failed: key_id=%s source=%s reason=%s", key_id, address, reason)
        now = self.clock()
        self._last_failure = now
        if len(self._address) > _MAX_TRACKED or len(self._key_address) > _MAX_TRACKED:
            self._forget_old(now)
        self._address[address].append(now)
        if key_id != "-":
            self._key_address[(key_id, address)].append(now)
            self._key[key_id].append(now)

    def _wait(self, failures: deque[float] | None, limit: int, now: float) -> float:
        if not failures:
            return 0.0
        while failures and now - failures[0] > self.window:
            failures.popleft()
        if len(failures) < limit:
            return 0.0
        return self.window - (now - failures[-limit])

    def _forget_old(self, now: float) -> None:
        for table in (self._address, self._key_address, self._key):
            for name in [n for n, times in table.items() if not times or now - times[-1] > self.window]:
                del table[name]  # type: ignore[arg-type]
