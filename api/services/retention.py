"""The service's side of trace retention: a periodic sweep and delete-on-success.

The policy and the file operations live in ``traces.retention``; this module decides *what
is live* (queued and running generations keep their traces and uploads, whatever their age)
and when to run. The sweep's file work runs in a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from imageforge.api.models.generation import TERMINAL_STATUSES, Generation
from imageforge.traces.retention import PruneReport, RetentionPolicy, after_run, sweep

__all__ = ["live_generation_ids", "run_after_finish", "sweep_once", "sweep_periodically"]

logger = logging.getLogger(__name__)


def live_generation_ids(engine: Engine) -> set[str]:
    """Generations still queued or running: their traces and uploads must stay."""
    with Session(engine) as session:
        rows = session.exec(select(Generation.id).where(col(Generation.status).not_in(TERMINAL_STATUSES)))
        return set(rows)


def sweep_once(*, engine: Engine, trace_root: Path, upload_dir: Path, policy: RetentionPolicy) -> PruneReport:
    """One pass: expired traces (mode 'ttl') and unused old uploads; live generations are protected."""
    report = sweep(trace_root, policy, upload_dir=upload_dir, protect=live_generation_ids(engine))
    if report.deleted_count or report.failed:
        logger.info(
            "retention: deleted %d trace/upload folder(s), %d bytes freed, %d could not be deleted",
            report.deleted_count,
            report.bytes_freed,
            len(report.failed),
        )
    return report


async def sweep_periodically(
    *,
    engine: Engine,
    trace_root: Path,
    upload_dir: Path,
    policy: RetentionPolicy,
) -> None:
    """Sweep now, then every ``policy.interval_minutes``, until cancelled (the app's lifespan owns the task)."""
    while True:
        try:
            await asyncio.to_thread(
                sweep_once,
                engine=engine,
                trace_root=trace_root,
                upload_dir=upload_dir,
                policy=policy,
            )
        except Exception:  # a failed sweep must not stop the service; the next one tries again
            logger.exception("retention: the sweep failed")
        await asyncio.sleep(policy.interval.total_seconds())


def run_after_finish(trace_root: Path, generation_id: str, *, status: str, policy: RetentionPolicy) -> None:
    """Mode 'delete_on_success': a completed run's trace goes as soon as it is recorded."""
    try:
        after_run(trace_root, generation_id, succeeded=status == "completed", policy=policy)
    except OSError:
        logger.warning("retention: could not delete the trace of %s", generation_id, exc_info=True)
