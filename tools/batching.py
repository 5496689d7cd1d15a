"""How many items one device call may take: halved on out-of-memory, recovered after successes.

A generator or scorer that ran out of memory once must not be stuck at half its batch for the
life of a worker process (memory pressure is usually momentary: another job's call, a larger
frame), nor retry the size that just failed on the very next call. ``AdaptiveBatch`` keeps that
policy in one small, thread-safe object; the callers own the retry loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from imageforge.tools.devices import free_device_memory, is_out_of_memory

__all__ = ["AdaptiveBatch", "OutOfMemoryAtOneError", "run_adaptive"]

T = TypeVar("T")
R = TypeVar("R")


class OutOfMemoryAtOneError(RuntimeError):
    """Even a batch of one did not fit: the caller reports it, retrying cannot help."""


class AdaptiveBatch:
    """A batch-size limit: ``shrink`` after an out-of-memory error, back up after successes.

    ``ceiling`` is the configured maximum (None: no maximum). After ``recover_after``
    successful calls at the current limit the limit doubles, until it reaches the ceiling or
    the limit is lifted altogether.
    """

    def __init__(self, ceiling: int | None = None, *, recover_after: int = 4) -> None:
        if ceiling is not None and ceiling < 1:
            raise ValueError(f"`ceiling` must be >= 1 or None, got {ceiling!r}.")
        if recover_after < 1:
            raise ValueError(f"`recover_after` must be >= 1, got {recover_after!r}.")
        self.ceiling = ceiling
        self.recover_after = recover_after
        self._limit: int | None = None  # None: no out-of-memory limit in force
        self._successes = 0
        self._lock = threading.Lock()

    @property
    def limit(self) -> int | None:
        """The out-of-memory limit in force, None when there is none."""
        return self._limit

    def size(self, wanted: int) -> int:
        """The batch to run for ``wanted`` items."""
        with self._lock:
            return max(1, min(wanted, self.ceiling or wanted, self._limit or wanted))

    def shrink(self, failed: int) -> int:
        """Record that a batch of ``failed`` ran out of memory; returns the next size to try."""
        with self._lock:
            self._limit = max(1, failed // 2)
            self._successes = 0
            return self._limit

    def succeeded(self, size: int) -> None:
        """Record a batch that fit; enough of them at the limit lift it one step."""
        with self._lock:
            if self._limit is None or size < self._limit:
                return
            self._successes += 1
            if self._successes < self.recover_after:
                return
            self._successes = 0
            raised = self._limit * 2
            self._limit = None if self.ceiling is not None and raised >= self.ceiling else raised


def run_adaptive(
    call: Callable[[Sequence[T]], list[R]],
    items: Sequence[T],
    batch: AdaptiveBatch,
    *,
    device: str = "any",
    on_shrink: Callable[[int, int], None] | None = None,
) -> list[R]:
    """``call`` over ``items`` in chunks as large as ``batch`` allows, one result per item, in order.

    On out-of-memory the chunk halves and the items not yet done are retried; a chunk of one
    that does not fit raises ``OutOfMemoryAtOneError``. Only the message of the error is kept:
    its traceback holds the frames (and activations) of the failed call, and memory is
    returned only once they are gone. ``on_shrink(failed, next)`` is told of every halving.
    """
    out: list[R] = []
    position = 0
    while position < len(items):
        size = batch.size(len(items) - position)
        chunk = items[position : position + size]
        failure: str | None = None
        try:
            results = call(chunk)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            failure = str(exc)
        if failure is not None:
            free_device_memory(device)
            if size == 1:
                raise OutOfMemoryAtOneError(f"out of memory with a batch of one ({failure})") from None
            smaller = batch.shrink(size)
            if on_shrink is not None:
                on_shrink(size, smaller)
            continue
        if len(results) != len(chunk):
            raise ValueError(f"expected {len(chunk)} results, got {len(results)}")
        batch.succeeded(size)
        out.extend(results)
        position += size
    return out
