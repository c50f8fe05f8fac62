"""Encryption at rest for third-party credentials (provider tokens), with Fernet from `cryptography`."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretsBox:
    def __init__(self, key: str) -> None:
        # Any passphrase becomes a valid 32-byte Fernet key; a real Fernet key works as well.
        digest = hashlib.sha256(key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("the stored credential cannot be decrypted with the configured key") from exc
