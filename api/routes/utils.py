"""Health and Prometheus metrics.

``/health`` answers everyone (load balancers need its status and its 503) but tells only
signed-in callers more; ``/metrics`` carries counts and latencies, no names of hosts, paths
or keys, for a Prometheus scraper.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST

from imageforge.api.core.dbcheck import integrity_problems
from imageforge.api.core.redact import redact, redact_text
from imageforge.api.deps import BackendsDep, MetricsDep, OptionalUser, RunnerDep, SettingsDep, require_admin
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


#: What every signed-in caller sees of a worker; administrators see the whole record
#: (host, pid, backends, loaded models).
_WORKER_SUMMARY = ("name", "device", "concurrency", "running")


def _user_cache(app: Any) -> dict[str, Any] | None:
    users = getattr(app.state, "users", None)
    return None if users is None else {"entries": len(users), "live": users.live}


def _worker_processes(workers: list[dict[str, Any]], *, admin: bool) -> list[dict[str, Any]]:
    """The live worker processes, from their heartbeats (distributed) or this process (embedded)."""
    if admin:
        return [redact(worker) for worker in workers]
    return [{key: worker[key] for key in _WORKER_SUMMARY if key in worker} for worker in workers]


@router.get(
    "/health",
    response_model=HealthPublic,
    response_model_exclude_none=True,
    responses={
        503: {"model": HealthPublic, "description": "Unhealthy."},
        401: {"description": "A bad token, or `deep=1` without one."},
        403: {"description": "`deep=1` by a user who is not an administrator."},
    },
)
async def health(
    request: Request,
    response: Response,
    settings: SettingsDep,
    runner: RunnerDep,
    metrics: MetricsDep,
    default_backends: BackendsDep,
    user: OptionalUser,
    deep: Annotated[
        bool, Query(description="Also run the database's consistency check (administrators only; slow).")
    ] = False,
) -> HealthPublic:
    """healthy, degraded (queue nearly full, SLO missed, backends not built) or unhealthy
    (database unreachable or corrupt, no live worker; answered with 503 for load balancers).

    Anonymous callers get the status alone; a signed-in user also the queue, the workers and
    which backend serves each role; an administrator the deployment's details (configured
    backends, notes, loaded models, dev mode), with secrets in URLs and settings redacted.
    """
    if deep:
        if user is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "Not authenticated: `deep=1` needs an administrator's `Authorization: Bearer <token>`.",
                {"WWW-Authenticate": "Bearer"},
            )
        require_admin(user)
    issues: list[str] = []
    app = request.app
    database_ok = await app.state.database.probe() if deep else app.state.database.reachable
    database = "ok" if database_ok else "unreachable"
    if not database_ok:
        issues.append("database unreachable")
    elif deep:
        problems = await run_in_threadpool(integrity_problems, app.state.engine)
        if problems:
            database = "corrupt"
            issues.append("database integrity check failed: " + "; ".join(problems))
    alive = runner.alive_workers
    if alive == 0 and not settings.broker_url:
        issues.append("no live worker")
    unhealthy = bool(issues)
    if alive == 0 and settings.broker_url:  # this API process still admits; the jobs wait for a worker
        issues.append("no live worker: jobs wait in the queue until `imageforge worker` runs")
    if runner.depth >= QUEUE_PRESSURE * runner.queue_size:
        issues.append(f"queue {runner.depth}/{runner.queue_size} nearly full")
    if not metrics.slo_met():
        issues.append(f"generator P95 {metrics.generator_p95():.1f} s exceeds the {settings.slo_p95_s:g} s SLO")
    services = default_backends.services
    services_error = default_backends.error
    if services_error:
        issues.append("default backends failed to build")
    state = "unhealthy" if unhealthy else ("degraded" if issues else "healthy")
    if unhealthy:
        response.status_code = 503
    if user is None:
        return HealthPublic(status=state)
    backends: dict[str, Any] = {}
    if services is not None:
        backends["active"] = redact(services.describe())
    if user.is_superuser:
        backends["configured"] = redact(settings.default_backends().model_dump(mode="json"))
        backends["openai_api_key"] = settings.openai_api_key is not None
        if services is not None:
            backends["notes"] = [redact_text(note) for note in services.notes]
        if services_error:
            backends["error"] = redact_text(services_error)
    return HealthPublic(
        status=state,
        dev_mode=settings.dev_mode if user.is_superuser else None,
        database=database,
        workers=runner.workers,
        busy_workers=runner.busy,
        worker_processes=_worker_processes(runner.worker_list(), admin=user.is_superuser),
        queue_depth=runner.depth,
        queue_size=runner.queue_size,
        backends=backends,
        loaded_models=redact(_loaded_models()) if user.is_superuser else None,
        user_cache=_user_cache(app) if user.is_superuser else None,
        generator_p95_s=metrics.generator_p95(),
        slo_p95_s=settings.slo_p95_s,
        issues=issues,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def prometheus_metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
