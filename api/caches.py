"""In-memory caches for the status-polling hot path.

Clients poll GET /api/generations/{id} many times per scene, while a generation's document
changes only when the job runner writes to it (start, plan, scene, finish, cancel) and the
runner says so. So a poll is usually answered from memory, on the event loop, without a
database query or a trip to the thread pool; only the live progress is added per request.

``GenerationCache`` is versioned against a race: the runner invalidates after it commits; a
reader that loaded before that commit but stores after the invalidation would otherwise keep
a stale entry, so a load is stored only if the version it started from is still current.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["GenerationCache", "UserCache"]

V = TypeVar("V")


class GenerationCache(Generic[V]):
    """Values derived from one generation's stored rows, per sub-key (e.g. the base URL)."""

    def __init__(self, *, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError(f"`max_entries` must be at least 1, got {max_entries!r}.")
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._epoch = 0  # the version of every generation not in ``_versions``
        self._versions: dict[str, int] = {}
        # generation id -> (version, {sub-key -> value}), least recently used first
        self._entries: OrderedDict[str, tuple[int, dict[str, V]]] = OrderedDict()

    def _version(self, generation_id: str) -> int:
        return self._versions.get(generation_id, self._epoch)

    def peek(self, generation_id: str, key: str) -> V | None:
        with self._lock:
            entry = self._entries.get(generation_id)
            if entry is None or entry[0] != self._version(generation_id) or key not in entry[1]:
                return None
            self._entries.move_to_end(generation_id)
            return entry[1][key]

    def get(self, generation_id: str, key: str, load: Callable[[], V]) -> V:
        """The cached value, or ``load()``'s (stored when no change raced with it). A load
        that raises stores nothing."""
        with self._lock:
            version = self._version(generation_id)
            entry = self._entries.get(generation_id)
            if entry is not None and entry[0] == version and key in entry[1]:
                self._entries.move_to_end(generation_id)
                return entry[1][key]
        value = load()
        with self._lock:
            if self._version(generation_id) == version:
                entry = self._entries.get(generation_id)
                values = entry[1] if entry is not None and entry[0] == version else {}
                values[key] = value
                self._entries[generation_id] = (version, values)
                self._entries.move_to_end(generation_id)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return value

    def invalidate(self, generation_id: str) -> None:
        with self._lock:
            self._versions[generation_id] = next(self._counter)
            self._entries.pop(generation_id, None)
            if len(self._versions) > 4 * self._max_entries:
                # Forget old versions; a new epoch makes every load in flight miss instead
                # of storing what it read under a version that is no longer tracked.
                self._versions.clear()
                self._epoch = next(self._counter)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class UserCache(Generic[V]):
    """Users found active by a lookup, kept for ``ttl_s`` seconds by id.

    Tokens are still verified on every request; this only saves the user lookup, so a user
    deactivated in the database loses access within ``ttl_s``.
    """

    def __init__(
        self, *, ttl_s: float = 30.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_s < 0:
            raise ValueError(f"`ttl_s` must not be negative, got {ttl_s!r}.")
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._users: OrderedDict[int, tuple[float, V]] = OrderedDict()

    def get(self, user_id: int) -> V | None:
        """The user, when found active less than ``ttl_s`` ago."""
        with self._lock:
            entry = self._users.get(user_id)
            if entry is None or entry[0] <= self._clock():
                return None
            return entry[1]

    def remember(self, user_id: int, user: V) -> None:
        with self._lock:
            self._users[user_id] = (self._clock() + self._ttl_s, user)
            self._users.move_to_end(user_id)
            while len(self._users) > self._max_entries:
                self._users.popitem(last=False)
