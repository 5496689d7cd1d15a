"""Keeping the garbage collector's full passes short in a long-running process.

The service imports torch, transformers, diffusers, LangGraph and (in a worker) Celery:
millions of objects that live as long as the process. CPython's full (generation 2)
collection walks every one of them, and under the job load of benchmarks/bench_service.py a
full pass ran every ~10 s and held the GIL for 215-415 ms: each request in flight waited
behind it, which was the whole of the status p99 (benchmarks/README.md, "Collector pauses").
Freezing what start-up built (``gc.freeze``, the technique CPython documents for servers)
takes it out of the collector's view, so a full pass walks only what the process allocated
since.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["freeze_startup_heap"]

logger = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Freeze every object alive now; returns how many the collector no longer scans. Call it
    once, when start-up has built what lives on. No collection first: that one full pass cost
    0.2-0.4 s per start (a test suite starts hundreds of apps), and what garbage start-up left
    is a few megabytes kept for the life of the process."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("froze %d start-up objects out of the collector's full passes", frozen)
    return frozen
