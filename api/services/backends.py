"""The built backends (chat model, image generator, scorers): the one place the service builds them.

``DefaultBackends`` lives on ``app.state.backends``. The lifespan builds the deployment's
default set once at start-up (``build``) and the server still starts when that fails (``/health``
then says why); the smart image and the assistant use that set (``get``, ``services``), and
the job pipeline asks for the set its job stored (``for_run``), which a request may have
chosen by backend name. ``graph.services.build_services`` caches what it builds, so a set is
built once per process (per thread) however often it is asked for. The OpenAI key is read
here, at the boundary, and goes no further than the built clients.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import fields
from functools import cache
from typing import TYPE_CHECKING, Any

from imageforge.api.core.config import Settings
from imageforge.api.core.redact import redact, redact_text
from imageforge.graph.context import BackendSettings

if TYPE_CHECKING:
    from imageforge.graph.services import Services

__all__ = ["BackendsUnavailableError", "DefaultBackends", "build_backends"]

logger = logging.getLogger(__name__)


class BackendsUnavailableError(RuntimeError):
    """The deployment's default backends failed to build (at start-up); the message says why."""


def build_backends(settings: Settings, backends: BackendSettings | None = None) -> Services:
    """The services for ``backends`` (default: the deployment's), built or reused. Blocking:
    building may load models, so call it from a worker thread."""
    from imageforge.graph.services import build_services

    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    services = build_services(backends if backends is not None else settings.default_backends(), api_key=api_key)
    return _redacted(services)


@cache
def _redacted_class() -> type[Services]:
    from imageforge.graph.services import Services

    class RedactedServices(Services):
        def describe(self) -> dict[str, Any]:
            return redact(super().describe())

    return RedactedServices


def _redacted(services: Services) -> Services:
    """The same backends, with their notes (logged, shown by /health) and ``describe()`` (written
    to every summary.json) free of secrets in endpoint URLs."""
    values = {field.name: getattr(services, field.name) for field in fields(services)}
    values["notes"] = [redact_text(note) for note in services.notes]
    return _redacted_class()(**values)


class DefaultBackends:
    """The deployment's default backends for one app, and the failure that kept them from building."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: Services | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def build(self) -> Services | None:
        """Build the default set at start-up, logging which backend serves each role; a failure
        is recorded in ``error`` (and logged) instead of raised."""
        try:
            services = self.get()
        except Exception as exc:  # the server still starts; /health says why it is degraded
            logger.exception("the default backends failed to build")
            self.error = f"{type(exc).__name__}: {exc}"
            return None
        for note in services.notes:
            logger.info("backend: %s", note)
        return services

    def get(self) -> Services:
        """The default set, built on first use (an app started with an injected pipeline builds
        none at start-up). ``BackendsUnavailableError`` when building failed at start-up."""
        if self.error:
            raise BackendsUnavailableError(f"the default backends failed to build: {self.error}")
        with self._lock:
            if self.services is None:
                self.services = build_backends(self.settings)
            return self.services

    def for_run(self, backends: BackendSettings) -> Services:
        """The set a job's stored backends name (the defaults, or a request's choice of names)."""
        return build_backends(self.settings, backends)
