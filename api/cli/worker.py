"""``imageforge worker``: one Celery worker process that runs jobs on one device.

Start one per GPU (``--device cuda:0``, ``--device cuda:1``, ...) on any number of machines,
all against the same broker (IMAGEFORGE_BROKER_URL), database (PostgreSQL) and trace
storage as the API processes. ``--concurrency`` jobs run at once on the worker's event loop;
only their device calls wait for the device.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from imageforge.api.cli.service import checked_settings
from imageforge.api.core.config import Settings

__all__ = ["worker"]


def _settings(device: str | None) -> Settings:
    def build() -> Settings:
        settings = Settings(**({"device": device} if device is not None else {}))  # type: ignore[arg-type]
        settings.check_execution()
        return settings

    settings = checked_settings(build)
    if not settings.broker_url:
        typer.echo(
            "imageforge worker needs IMAGEFORGE_BROKER_URL=redis://host:6379/0 (the API's broker); "
            "without one, `imageforge serve` runs the jobs itself.",
            err=True,
        )
        raise typer.Exit(2)
    return settings


def worker(
    device: Annotated[
        str | None, typer.Option(help="Where this worker's models run: cpu, cuda, cuda:1 (default: IMAGEFORGE_DEVICE).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs this worker runs at the same time.")] = 2,
    name: Annotated[
        str | None, typer.Option(help="The worker's name in /health and Flower (default: imageforge-PID@host).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run jobs from the broker (distributed mode; needs Redis and PostgreSQL)."""
    from imageforge.api.worker.celery_app import QUEUE, make_celery
    from imageforge.api.worker.runtime import WorkerRuntime, default_worker_name, register_task

    settings = _settings(device)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker_name = name or default_worker_name()
    celery = make_celery(settings)
    runtime = WorkerRuntime(settings, celery, name=worker_name, device=settings.device, concurrency=concurrency)
    try:
        runtime.start()
    except Exception as exc:
        typer.echo(f"The worker could not start: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
    register_task(celery, runtime)
    try:
        celery.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--hostname={worker_name}",
                f"--loglevel={log_level.upper()}",
                f"--queues={QUEUE}",
                "--without-mingle",
                "--without-gossip",
            ]
        )
    finally:
        runtime.stop()
