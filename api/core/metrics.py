"""Prometheus metrics of one app instance (its own registry, so tests can build several).

Latencies come from the timings the graph records in each scene result; the generator's
P95 is compared with seed 002's SLO (P95 < 30 s per generation call).
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from imageforge.traces.schemas import SceneResult

__all__ = ["ServiceMetrics", "percentile"]

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
_RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (a whole number 0-100) by ``statistics.quantiles`` with the
    inclusive method: interpolated between the two nearest values, never outside their range.
    ``None`` for no values."""
    if not 0 <= q <= 100 or q != int(q):
        raise ValueError(f"`q` must be a whole number within 0-100, got {q!r}.")
    data = [float(v) for v in values]
    if not data:
        return None
    if len(data) == 1 or q in (0, 100):
        return min(data) if q == 0 else max(data)
    return statistics.quantiles(data, n=100, method="inclusive")[int(q) - 1]


class _StatusCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("imageforge_generations", "Stored generations by status.", labels=["status"])
        counts = self._counts()
        for status in ("queued", "running", "completed", "failed", "cancelled"):
            family.add_metric([status], counts.get(status, 0))
        yield family


class ServiceMetrics:
    def __init__(self, *, slo_p95_s: float, window: int = 1000) -> None:
        self.registry = CollectorRegistry()
        self.slo_p95_s = slo_p95_s
        self._lock = threading.Lock()
        self._generator_window: deque[float] = deque(maxlen=window)
        self._images = 0
        self._cache_hits = 0
        r = self.registry
        self.step_latency = Histogram(
            "imageforge_step_duration_seconds",
            "Latency of pipeline steps.",
            ["step"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.generator_latency = Histogram(
            "imageforge_generator_duration_seconds",
            "Latency of one generator call (all variations of an attempt).",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.scorer_latency = Histogram(
            "imageforge_scorer_duration_seconds",
            "Latency of scoring one attempt's variations.",
            ["step"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.generation_latency = Histogram(
            "imageforge_generation_duration_seconds",
            "Wall time of whole storyboards, by final status.",
            ["status"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.finished = Counter(
            "imageforge_generations_finished", "Storyboards finished by this process.", ["status"], registry=r
        )
        self.images = Counter("imageforge_images_generated", "Variations generated.", registry=r)
        self.cache_hits = Counter("imageforge_generator_cache_hits", "Variations served from the cache.", registry=r)
        self.rejected = Counter("imageforge_queue_rejections", "Submissions refused with 429.", registry=r)
        Gauge("imageforge_cache_hit_rate", "Cache hits / variations generated.", registry=r).set_function(
            self.cache_hit_rate
        )
        Gauge(
            "imageforge_generator_p95_seconds", "P95 generator-call latency over the recent window.", registry=r
        ).set_function(lambda: self.generator_p95() or 0.0)
        Gauge("imageforge_slo_p95_target_seconds", "Seed 002's SLO on the generator P95.", registry=r).set(slo_p95_s)
        Gauge("imageforge_slo_met", "1 while the generator P95 is within the SLO.", registry=r).set_function(
            lambda: 1.0 if self.slo_met() else 0.0
        )
        self.queue_depth = Gauge("imageforge_queue_depth", "Jobs waiting for a worker.", registry=r)
        self.workers = Gauge("imageforge_workers", "Worker pool size.", registry=r)
        self.busy_workers = Gauge("imageforge_workers_busy", "Workers running a job.", registry=r)

    def bind_runner(
        self,
        *,
        depth: Callable[[], float],
        workers: Callable[[], float],
        busy: Callable[[], float],
        counts: Callable[[], dict[str, int]],
    ) -> None:
        self.queue_depth.set_function(depth)
        self.workers.set_function(workers)
        self.busy_workers.set_function(busy)
        self.registry.register(_StatusCollector(counts))

    def observe_scene(self, result: SceneResult) -> None:
        for step, seconds in result.timings_s.items():
            self.step_latency.labels(step=step).observe(seconds)
        for attempt in result.attempts:
            images = len(attempt.variations)
            self.images.inc(images)
            self.cache_hits.inc(attempt.cache_hits)
            with self._lock:
                self._images += images
                self._cache_hits += attempt.cache_hits
            for step, seconds in attempt.timings_s.items():
                self.step_latency.labels(step=f"attempt.{step}").observe(seconds)
                if step.startswith("generat"):
                    self.generator_latency.labels(backend=attempt.generator or "unknown").observe(seconds)
                    with self._lock:
                        self._generator_window.append(seconds)
                elif step.startswith("scor"):
                    self.scorer_latency.labels(step=step).observe(seconds)

    def observe_generation(self, status: str, elapsed_s: float | None) -> None:
        self.finished.labels(status=status).inc()
        if elapsed_s is not None:
            self.generation_latency.labels(status=status).observe(elapsed_s)

    def cache_hit_rate(self) -> float:
        with self._lock:
            return self._cache_hits / self._images if self._images else 0.0

    def generator_p95(self) -> float | None:
        with self._lock:
            window = list(self._generator_window)
        return percentile(window, 95)

    def slo_met(self) -> bool:
        p95 = self.generator_p95()
        return p95 is None or p95 <= self.slo_p95_s

    def render(self) -> bytes:
        return generate_latest(self.registry)
