"""Health and Prometheus metrics."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from imageforge.api.core.db import ping
from imageforge.api.deps import BackendsDep, MetricsDep, RunnerDep, SettingsDep
from imageforge.api.models.operations import HealthPublic

router = APIRouter(tags=["utils"])

#: A queue this full reports "degraded": new work will soon be refused.
QUEUE_PRESSURE = 0.8


def _loaded_models() -> list[dict[str, Any]]:
    try:
        from imageforge.tools.model_cache import model_cache
    except ImportError:
        return []
    return [asdict(model) for model in model_cache.loaded()]


@router.get(
    "/health", response_model=HealthPublic, responses={503: {"model": HealthPublic, "description": "Unhealthy."}}
)
def health(
    request: Request,
    response: Response,
    settings: SettingsDep,
    runner: RunnerDep,
    metrics: MetricsDep,
    default_backends: BackendsDep,
) -> HealthPublic:
    """healthy, degraded (queue nearly full, SLO missed, backends not built) or unhealthy
    (database unreachable, no live worker; answered with 503 for load balancers)."""
    issues: list[str] = []
    database_ok = ping(request.app.state.engine)
    if not database_ok:
        issues.append("database unreachable")
    alive = runner.alive_workers
    if alive == 0:
        issues.append("no live worker")
    unhealthy = bool(issues)
    if runner.depth >= QUEUE_PRESSURE * runner.queue_size:
        issues.append(f"queue {runner.depth}/{runner.queue_size} nearly full")
    if not metrics.slo_met():
        issues.append(f"generator P95 {metrics.generator_p95():.1f} s exceeds the {settings.slo_p95_s:g} s SLO")
    backends: dict[str, Any] = {
        "configured": settings.default_backends().model_dump(mode="json"),
        "openai_api_key": settings.openai_api_key is not None,
    }
    services = default_backends.services
    if services is not None:
        backends["active"] = services.describe()
        backends["notes"] = list(services.notes)
    services_error = default_backends.error
    if services_error:
        issues.append(f"default backends failed to build: {services_error}")
        backends["error"] = services_error
    state = "unhealthy" if unhealthy else ("degraded" if issues else "healthy")
    if unhealthy:
        response.status_code = 503
    return HealthPublic(
        status=state,
        dev_mode=settings.dev_mode,
        database="ok" if database_ok else "unreachable",
        workers=settings.workers,
        busy_workers=runner.busy,
        queue_depth=runner.depth,
        queue_size=runner.queue_size,
        backends=backends,
        loaded_models=_loaded_models(),
        generator_p95_s=metrics.generator_p95(),
        slo_p95_s=settings.slo_p95_s,
        issues=issues,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def prometheus_metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
