"""Revocations between processes, through Redis: how a user's change reaches every API
process's ``UserCache``.

A command that changes a user (``imageforge users deactivate``, ``password``, ``delete``)
publishes the user's public id on ``REVOCATIONS_CHANNEL`` after it commits; every distributed
API process's ``RevocationListener`` drops that user. The listener pings through its own
subscription between reads, so the cache knows how recently it was sure to hear everything.

A command run without the broker, or against another broker, would change the database and
tell no one, and the revoked token would keep working. So API processes register in the
database that they cache users (``UserCacheRegistration``), and each listener sets the
registration's token on its broker (``REGISTRATION_KEY``). ``revocation_client`` checks both
before a command changes anything and refuses with a message when it could not be heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.redact import redact_url
from imageforge.api.crud import user as crud
from imageforge.api.models.user import UserCacheRegistration
from imageforge.api.services.redis_events import Subscription, async_client
from imageforge.api.services.user_cache import STALE_AFTER_S, UserCache

__all__ = [
    "PING_EVERY_S",
    "REGISTRATION_KEY",
    "REVOCATIONS_CHANNEL",
    "RevocationListener",
    "RevocationUnheardError",
    "publish_revocation",
    "revocation_client",
    "start_listening",
]

logger = logging.getLogger(__name__)

REVOCATIONS_CHANNEL = "imageforge:users:revoked"
REGISTRATION_KEY = "imageforge:users:registration"
#: Seconds between two pings through the subscription: a third of ``STALE_AFTER_S``, so one
#: slow answer does not stop the cache.
PING_EVERY_S = STALE_AFTER_S / 3


class RevocationListener(Subscription):
    """This process's subscription to ``REVOCATIONS_CHANNEL``, feeding a ``UserCache``: it
    pings through the subscription between reads, and a failed connection forgets every user."""

    name = "imageforge-revocation-listener"

    def __init__(
        self, redis: aioredis.Redis, cache: UserCache, *, registration: str, ping_every_s: float = PING_EVERY_S
    ) -> None:
        super().__init__(redis)
        self.cache = cache
        self.registration = registration
        self.ping_every_s = ping_every_s

    async def stop(self) -> None:
        """Stop listening (the cache serves no one from then on) and close the client."""
        await super().stop()
        self.cache.forget()
        await self.redis.aclose()

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(REVOCATIONS_CHANNEL)
        # Only once subscribed: a command that finds the token publishes to us.
        await self.redis.set(REGISTRATION_KEY, self.registration)
        self.cache.forget()  # whatever was published while we were not subscribed is lost

    def _lost(self) -> None:
        self.cache.forget()  # serve no cached user until we hear the channel again

    async def _read(self, pubsub: PubSub) -> None:
        next_ping = 0.0
        while True:
            now = time.monotonic()
            if now >= next_ping:
                await pubsub.ping(repr(now))  # answered after every message published before it
                next_ping = now + self.ping_every_s
            message = await pubsub.get_message(timeout=max(next_ping - time.monotonic(), 0.0))
            if message is None:
                continue
            data = message["data"]
            data = data.decode() if isinstance(data, bytes) else str(data)
            if message["type"] == "pong":
                with contextlib.suppress(ValueError):
                    self.cache.confirm(float(data))
            elif message["type"] == "message":
                self.cache.revoke(data)


async def start_listening(*, engine: Engine, broker_url: str, cache: UserCache) -> RevocationListener:
    """Register in the database that this process caches users, then feed ``cache`` from the
    broker's revocations (registered first: a command that runs meanwhile must already know)."""

    def register() -> str:
        with Session(engine) as session:
            return crud.register_user_cache(session=session, broker=redact_url(broker_url)).token

    token = await asyncio.to_thread(register)
    listener = RevocationListener(async_client(broker_url, max_connections=4), cache, registration=token)
    await listener.start()
    return listener


class RevocationUnheardError(Exception):
    """A change to a user could not reach the API processes that cache users (the caller says
    whether it was made)."""


def revocation_client(broker_url: str | None, registration: UserCacheRegistration | None) -> redis.Redis | None:
    """A client to publish revocations on, checked to reach the processes that listen; None
    when no API process caches users. Raises ``RevocationUnheardError`` saying why not."""
    if registration is None:
        return None
    registered = f"{registration.broker} (registered {registration.registered_at:%Y-%m-%d %H:%M} UTC)"
    if not broker_url:
        raise RevocationUnheardError(
            "The API processes of this database keep users in memory and drop them on a message "
            f"through their broker, {registered}. Set IMAGEFORGE_BROKER_URL to that broker so they hear "
            "this change."
        )
    client = redis.Redis.from_url(broker_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
    try:
        found = client.get(REGISTRATION_KEY)
    except redis.RedisError as exc:
        client.close()
        raise RevocationUnheardError(f"Cannot reach the broker {redact_url(broker_url)}: {exc}.") from exc
    if found != registration.token:
        client.close()
        raise RevocationUnheardError(
            f"No API process listens for revocations on {redact_url(broker_url)}: the API processes of this "
            f"database use {registered}. Use that broker, or start an API process on it first."
        )
    return client


def publish_revocation(client: redis.Redis, public_id: str) -> None:
    """Tell every listening API process to drop the user (then close ``client``)."""
    try:
        client.publish(REVOCATIONS_CHANNEL, public_id)
    except redis.RedisError as exc:
        raise RevocationUnheardError(f"The API processes could not be told ({exc}).") from exc
    finally:
        client.close()
