"""Who runs a job: a lease in Redis that its holder renews while the job runs.

``SET key token NX PX ttl`` gives the job to exactly one holder; renewal and release only
act while the key still holds the caller's token (a script, so the check and the change
are one step), so a worker whose lease expired cannot extend or delete its successor's.
A redelivered message whose job holds a live lease is dropped, which is what keeps two
workers from running one job when Redis delivers a message twice (celery#7918).
"""

from __future__ import annotations

import redis
from redis import asyncio as aioredis

from imageforge.api.services.redis_events import lease_key

__all__ = ["acquire", "release", "renew"]

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


async def acquire(client: aioredis.Redis, generation_id: str, token: str, ttl_s: float) -> bool:
    return bool(await client.set(lease_key(generation_id), token, nx=True, px=int(ttl_s * 1000)))


async def release(client: aioredis.Redis, generation_id: str, token: str) -> bool:
    return bool(await client.eval(_RELEASE, 1, lease_key(generation_id), token))


def renew(client: redis.Redis, generation_id: str, token: str, ttl_s: float) -> bool:
    """Blocking: the heartbeat thread calls it, so a busy event loop cannot starve a lease."""
    return bool(client.eval(_RENEW, 1, lease_key(generation_id), token, int(ttl_s * 1000)))
