"""The status-document cache (hits, invalidation, the load/invalidate race) and the user cache
of distributed API processes (served only while its revocation channel is confirmed live; a
fill that raced with a revocation stores nothing). Its Redis side is in test_user_revocation.py."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import inspect

from imageforge.api.models.user import User
from imageforge.api.services.status import StatusDocumentCache
from imageforge.api.services.user_cache import STALE_AFTER_S, UserCache


def test_status_document_cache_hits_until_invalidated() -> None:
    cache: StatusDocumentCache[str] = StatusDocumentCache(max_entries=4)
    loads: list[str] = []

    def load(value: str):
        def inner() -> str:
            loads.append(value)
            return value

        return inner

    assert cache.peek("g1", "http://a/") is None
    assert cache.get("g1", "http://a/", load("v1")) == "v1"
    assert cache.get("g1", "http://a/", load("never")) == "v1"
    assert cache.peek("g1", "http://a/") == "v1"
    assert cache.get("g1", "http://b/", load("v1-b")) == "v1-b"  # per base URL
    cache.invalidate("g1")
    assert cache.peek("g1", "http://a/") is None and cache.peek("g1", "http://b/") is None
    assert cache.get("g1", "http://a/", load("v2")) == "v2"
    assert loads == ["v1", "v1-b", "v2"]


def test_a_load_that_raced_with_an_invalidation_is_not_stored() -> None:
    cache: StatusDocumentCache[str] = StatusDocumentCache()

    def stale_load() -> str:
        cache.invalidate("g1")  # the runner commits a change while this load runs
        return "stale"

    assert cache.get("g1", "k", stale_load) == "stale"  # the caller still gets an answer ...
    assert cache.peek("g1", "k") is None  # ... but the next one reloads
    assert cache.get("g1", "k", lambda: "fresh") == "fresh"
    assert cache.peek("g1", "k") == "fresh"


def test_a_failed_load_stores_nothing_and_the_cache_is_bounded() -> None:
    cache: StatusDocumentCache[int] = StatusDocumentCache(max_entries=2)

    def boom() -> int:
        raise LookupError("no such generation")

    with pytest.raises(LookupError):
        cache.get("missing", "k", boom)
    assert cache.peek("missing", "k") is None
    for n in range(3):
        cache.get(f"g{n}", "k", lambda n=n: n)
    assert len(cache) == 2 and cache.peek("g0", "k") is None and cache.peek("g2", "k") == 2
    with pytest.raises(ValueError, match="max_entries"):
        StatusDocumentCache(max_entries=0)


def test_forgetting_versions_never_resurrects_a_stale_load() -> None:
    cache: StatusDocumentCache[str] = StatusDocumentCache(max_entries=1)

    def load_then_churn() -> str:
        for n in range(10):  # enough invalidations to make the cache forget its versions
            cache.invalidate(f"other{n}")
        return "stale"

    cache.get("g1", "k", load_then_churn)
    assert cache.peek("g1", "k") is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _user(public_id: str = "a" * 32, **fields: object) -> User:
    return User(id=1, public_id=public_id, email="ann@example.com", hashed_password="!", **fields)


def test_the_user_cache_serves_only_while_its_channel_is_confirmed() -> None:
    clock = Clock()
    cache = UserCache(clock=clock)
    ann = _user()
    cache.fill(cache.version, ann)
    assert cache.get(ann.public_id) is None and len(cache) == 0  # never confirmed: neither served nor kept

    cache.confirm(clock.now)
    cache.fill(cache.version, ann)
    served = cache.get(ann.public_id)
    assert served is not None and served.email == ann.email and served.token_version == ann.token_version
    assert served is not ann and cache.get(ann.public_id) is not served  # every request its own instance
    assert inspect(served) is not inspect(ann) and inspect(served).transient  # with its own SQLAlchemy state
    served.is_active = False
    assert cache.get(ann.public_id).is_active  # type: ignore[union-attr]  # a request cannot change the cache

    clock.now += STALE_AFTER_S  # no ping has come back for that long: a revocation may be lost
    assert not cache.live and cache.get(ann.public_id) is None
    cache.confirm(clock.now - STALE_AFTER_S - 1)  # an old answer arriving late changes nothing
    assert cache.get(ann.public_id) is None
    cache.confirm(clock.now - 0.2)
    assert cache.get(ann.public_id) is not None


def test_a_revocation_drops_the_user_and_any_lookup_that_raced_with_it() -> None:
    clock = Clock()
    cache = UserCache(clock=clock)
    cache.confirm(clock.now)
    ann, bob = _user("a" * 32), _user("b" * 32)
    cache.fill(cache.version, ann)
    version = cache.version  # a lookup of bob starts ...
    cache.revoke(ann.public_id)  # ... a revocation arrives while it reads the database ...
    cache.fill(version, bob)  # ... so what it read may predate the change: not kept
    assert cache.get(ann.public_id) is None and cache.get(bob.public_id) is None
    cache.fill(cache.version, bob)
    assert cache.get(bob.public_id) is not None

    cache.forget()  # a (re)subscription: nothing served until the channel is confirmed again
    assert len(cache) == 0 and not cache.live
    cache.confirm(clock.now)
    assert cache.get(bob.public_id) is None


def test_the_user_cache_is_bounded() -> None:
    cache = UserCache(max_entries=2)
    cache.confirm(time.monotonic())
    for letter in "abc":
        cache.fill(cache.version, _user(letter * 32))
    assert len(cache) == 2 and cache.get("a" * 32) is None
    with pytest.raises(ValueError, match="max_entries"):
        UserCache(max_entries=0)
