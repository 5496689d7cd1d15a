"""The revocation channel of distributed API processes, against a real ``redis-server``: a
revoked user is dropped as the message arrives; a silent stall stops the cache within
``STALE_AFTER_S``; a dropped connection forgets everyone and registers again. (The cache's own
rules are in test_api_caches.py; the command line to API path in test_distributed.py.)"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imageforge.api.models.user import User
from imageforge.api.services.redis_events import async_client
from imageforge.api.services.revocations import REGISTRATION_KEY, RevocationListener, publish_revocation
from imageforge.api.services.user_cache import STALE_AFTER_S, UserCache
from tests.redis_server import redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="redis-server is not installed (.ci/run installs it with apt)"
    ),
]


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> float:
    """Seconds until ``condition()`` holds (a bound, not a timing check)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _user(letter: str) -> User:
    return User(id=ord(letter), public_id=letter * 32, email=f"{letter}@example.com", hashed_password="!")


async def test_the_listener_drops_revoked_users_and_serves_none_while_it_cannot_hear(tmp_path: Path) -> None:
    import redis

    with redis_server(tmp_path) as url:
        admin = redis.Redis.from_url(url, decode_responses=True)
        cache = UserCache()
        listener = RevocationListener(async_client(url), cache, registration="registration-1")
        await listener.start()
        try:
            await _until(lambda: cache.live)
            assert admin.get(REGISTRATION_KEY) == "registration-1"  # where the commands check they are heard
            ann, bob = _user("a"), _user("b")
            cache.fill(cache.version, ann)
            cache.fill(cache.version, bob)

            publish_revocation(redis.Redis.from_url(url), ann.public_id)  # as `imageforge users deactivate` does
            await _until(lambda: cache.get(ann.public_id) is None)
            assert cache.get(bob.public_id) is not None

            # A silent stall (Redis answers nothing): no cached user is served once the last
            # answered ping is STALE_AFTER_S old, and the cache resumes when the answers do
            # (nothing was lost: a paused server delivers in order afterwards).
            admin.execute_command("CLIENT", "PAUSE", "2500", "ALL")
            await _until(lambda: not cache.live, timeout_s=STALE_AFTER_S + 1.0)
            assert cache.get(bob.public_id) is None
            await _until(lambda: cache.live, timeout_s=5.0)
            assert cache.get(bob.public_id) is not None

            # A dropped connection: messages sent meanwhile are lost, so everyone is forgotten,
            # and the listener registers again on its new subscription.
            admin.delete(REGISTRATION_KEY)
            admin.client_kill_filter(_type="pubsub")
            await _until(lambda: admin.get(REGISTRATION_KEY) == "registration-1")
            assert cache.get(bob.public_id) is None and len(cache) == 0
            await _until(lambda: cache.live)
        finally:
            await listener.stop()
            admin.close()
        assert not cache.live
