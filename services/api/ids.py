"""Ids of jobs and sessions: random hex tokens. Anything else cannot name one, and is refused before
it reaches SQL (PostgreSQL text cannot even hold some characters a URL can carry, such as NUL)."""

import re
import secrets

MAX_ID_LENGTH = 64
_WELLFORMED = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_LENGTH}}}")


def new_id() -> str:
    return secrets.token_hex(10)


def is_wellformed_id(value: str) -> bool:
    return _WELLFORMED.fullmatch(value) is not None
