"""API tokens for ``madcheck serve``.

As in InfluxDB 3 Core, the first admin token is created by asking the running server for it
(``madcheck create token --admin``), which it grants once, to anyone, while no token exists yet.
Only a SHA-256 digest of each token is kept, in ``<data-dir>/tokens.json`` (mode 0600), so the data
directory never holds a usable secret. Losing the token means deleting that file while the server
is stopped and creating a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from pathlib import Path

TOKEN_PREFIX = "apiv3_"
_SCHEMES = ("bearer", "token")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer|Token <token>`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() not in _SCHEMES or not token.strip():
        return None
    return token.strip()


class TokenStore:
    """The hashed tokens of one data directory."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._digests = self._load()

    def _load(self) -> list[str]:
        if not self._path.exists():
            return []
        entries = json.loads(self._path.read_text(encoding="utf-8"))
        return [str(entry["sha256"]) for entry in entries]

    @property
    def empty(self) -> bool:
        with self._lock:
            return not self._digests

    def create_first_admin_token(self) -> str | None:
        """A new admin token, or ``None`` if one exists already (only the first is free)."""
        with self._lock:
            if self._digests:
                return None
            return self._add_locked()

    def create_token(self) -> str:
        """A new token regardless of existing ones: for in-process hosts such as the demo."""
        with self._lock:
            return self._add_locked()

    def _add_locked(self) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(48)
        self._digests.append(_digest(token))
        self._save()
        return token

    def is_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        candidate = _digest(token)
        with self._lock:
            return any(hmac.compare_digest(candidate, known) for known in self._digests)

    def _save(self) -> None:
        entries = [
            {"name": "_admin", "sha256": d, "created": int(time.time())} for d in self._digests
        ]
        temporary = self._path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=2)
        os.replace(temporary, self._path)
