"""The callers a distributed API process keeps in memory, forgotten the moment they are revoked.

Every request names its caller by a token, and the caller must still be active with the
token's version: a deactivation or a password change bites at the next request. Looking that
up in PostgreSQL on every status poll costs a thread-pool hop and a round trip, which on a
loaded machine is most of the poll's tail latency. So a distributed API process keeps the
users it has looked up, on three conditions that keep the guarantee:

- whatever revokes a user's tokens publishes it, and this process drops the user when the
  message arrives (``api.services.revocations``);
- a user is served from memory only while the subscription is *confirmed* live: a ping sent
  through it less than ``STALE_AFTER_S`` ago has come back, and Redis answers a ping only after
  every message published before it. A connection that dies silently therefore stops the
  cache within that time, and a (re)subscription starts it empty;
- a lookup that raced with any revocation stores nothing (fills are versioned).

Embedded mode has no cache: its SQLite lookups are in-process and already fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cachetools import LRUCache

from imageforge.api.models.user import User

__all__ = ["STALE_AFTER_S", "UserCache"]

#: A cached user is served only while a ping sent less than this long ago has come back
#: through the revocation subscription (``api.services.revocations``).
STALE_AFTER_S = 1.5


class UserCache:
    """Users by public id, served only while the revocation channel is confirmed live.

    Used from one event loop only (the lookups and the listener both run on it), so it needs
    no lock: a lookup reads ``version`` before it goes to the database and hands it back to
    ``fill``, which stores nothing if any revocation arrived in between.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"`max_entries` must be at least 1, got {max_entries!r}.")
        self._users: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=max_entries)  # public id -> columns
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._confirmed_at: float | None = None  # send time of the newest ping that came back
        self.version = 0

    @property
    def live(self) -> bool:
        """Whether every revocation published more than ``stale_after_s`` ago has arrived."""
        return self._confirmed_at is not None and self._clock() - self._confirmed_at < self._stale_after_s

    def get(self, public_id: str) -> User | None:
        """A new instance of the cached user, or None on a miss or while the channel is not
        confirmed live. Requests never share one instance, and not ``model_copy()``: a copy
        would share the loaded row's SQLAlchemy state."""
        if not self.live:
            return None
        fields = self._users.get(public_id)
        return User.model_validate(fields) if fields is not None else None

    def fill(self, version: int, user: User) -> None:
        """Keep ``user``, looked up when the cache was at ``version``, unless something was
        revoked since (the lookup may have read the row before that change committed)."""
        if version == self.version and self.live:
            self._users[user.public_id] = user.model_dump()

    def revoke(self, public_id: str) -> None:
        self.version += 1
        self._users.pop(public_id, None)

    def forget(self) -> None:
        """Drop every user and serve none until the channel is confirmed again (a
        (re)subscription: what was published before it is lost to this process)."""
        self.version += 1
        self._users.clear()
        self._confirmed_at = None

    def confirm(self, sent_at: float) -> None:
        """A ping sent at ``sent_at`` came back: every revocation published before it has arrived."""
        if self._confirmed_at is None or sent_at > self._confirmed_at:
            self._confirmed_at = sent_at

    def __len__(self) -> int:
        return len(self._users)
