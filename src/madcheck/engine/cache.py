"""The Processing Engine's ``influxdb3_local.cache``.

The engine gives each trigger a private cache and the process one shared cache; entries may
expire after a TTL. Values are held by reference, exactly as the engine does, so a plugin can keep
mutable state objects in it between calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


class _Store:
    """One key space with optional expiry; thread-safe because engine calls may overlap."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[Any, float | None]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: Any, ttl: float | None) -> None:
        expires = None if ttl is None else self._clock() + float(ttl)
        with self._lock:
            self._entries[key] = (value, expires)

    def get(self, key: str, default: Any) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            value, expires = entry
            if expires is not None and self._clock() >= expires:
                del self._entries[key]
                return default
            return value

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._entries.pop(key, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class GlobalCache(_Store):
    """The process-wide cache shared by every trigger (``use_global=True``)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        super().__init__(clock)


class TriggerCache:
    """``influxdb3_local.cache``: trigger-local by default, the global store on request."""

    def __init__(self, global_cache: GlobalCache | None = None, clock: Clock = time.monotonic):
        self._local = _Store(clock)
        self._global = global_cache if global_cache is not None else GlobalCache(clock)

    def _store(self, use_global: bool | None) -> _Store:
        return self._global if use_global else self._local

    def put(
        self, key: str, value: Any, ttl: float | None = None, use_global: bool | None = None
    ) -> None:
        self._store(use_global).put(key, value, ttl)

    def get(self, key: str, default: Any = None, use_global: bool | None = None) -> Any:
        return self._store(use_global).get(key, default)

    def delete(self, key: str, use_global: bool | None = None) -> bool:
        return self._store(use_global).delete(key)

    def clear(self) -> None:
        """Forget the trigger-local entries, as a server restart would."""
        self._local.clear()
