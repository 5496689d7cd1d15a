"""The Celery app both sides build from the same settings: the API sends, workers consume.

Why these options (celery#4976, celery#7918): a message is acknowledged only after its job
ends (``task_acks_late``) and put back if the worker process is lost
(``task_reject_on_worker_lost``); a worker takes one message per free slot
(``worker_prefetch_multiplier=1``), so a job never waits behind another inside a busy worker
while a free one idles. Redis hands an unacknowledged message to another worker only after
the transport's visibility timeout, and hands it out again if a job runs longer than that.
So the timeout is long (``broker_visibility_timeout_s``, 6 h by default, longer than any
storyboard) and is only a backstop: a lease with a heartbeat decides who runs a job, and the
reaper re-queues a job whose worker stopped heartbeating within seconds.
"""

from __future__ import annotations

from celery import Celery

from imageforge.api.core.config import Settings

__all__ = ["QUEUE", "TASK_NAME", "make_celery"]

TASK_NAME = "imageforge.run_generation"
QUEUE = "imageforge"


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise ValueError("IMAGEFORGE_BROKER_URL is not set: distributed execution needs a Redis broker.")
    app = Celery("imageforge", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=True,  # Flower and `celery events` see the jobs
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    return app
