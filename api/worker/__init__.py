"""Distributed execution: the Celery app, and the worker process that runs jobs (``imageforge worker``)."""
