"""The status-document cache: hits, invalidation, the load/invalidate race. (Users are not
cached: a revoked token must stop at once, so every request looks its user up.)"""

from __future__ import annotations

import pytest

from imageforge.api.services.status import StatusDocumentCache


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
