"""Shapes of the service's operations that belong to no table: the health report, the cost
estimate, a batch of storyboards and a plain message."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import SQLModel

__all__ = ["BatchItemResult", "BatchPublic", "BatchRequest", "EstimatePublic", "HealthPublic", "Message"]


class Message(SQLModel):
    message: str


# Batch -------------------------------------------------------------------------------------
class BatchRequest(BaseModel):
    """Items are validated one by one, so one bad storyboard does not reject the others."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, description="GenerationCreate objects.")


class BatchItemResult(BaseModel):
    index: int
    accepted: bool
    generation_id: str | None = None
    status_url: str | None = None
    events_url: str | None = None
    reason: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)


class BatchPublic(BaseModel):
    results: list[BatchItemResult]
    accepted: int
    rejected: int


# Estimate and health -----------------------------------------------------------------------
class EstimatePublic(BaseModel):
    scenes: int
    images: int = Field(description="Images when every scene passes on its first attempt.")
    images_max: int = Field(description="Images when every scene uses all its retries.")
    time_s_low: float
    time_s_high: float
    time_s_max: float = Field(description="Upper bound with every retry used.")
    cost_usd: float
    cost_usd_max: float
    generator: str
    llm: str
    measured: bool = Field(
        False, description="True when the LLM figures come from this deployment's measured runs, not constants."
    )
    assumptions: list[str]


class HealthPublic(BaseModel):
    """Anonymous callers get ``status`` alone; signed-in users the service's state; administrators
    also the deployment's details (``dev_mode``, configured backends, loaded models)."""

    status: Literal["healthy", "degraded", "unhealthy"]
    dev_mode: bool | None = None
    database: str | None = Field(None, description="ok, unreachable, or corrupt (found by `deep=1`).")
    workers: int | None = None
    busy_workers: int | None = None
    worker_processes: list[dict[str, Any]] | None = Field(
        None, description="The worker processes alive (distributed: from their heartbeats): name, device, models."
    )
    queue_depth: int | None = None
    queue_size: int | None = None
    backends: dict[str, Any] | None = None
    loaded_models: list[dict[str, Any]] | None = None
    user_cache: dict[str, Any] | None = Field(
        None,
        description="Distributed API process (administrators): callers kept in memory (`entries`), and whether "
        "its revocation channel is confirmed (`live`; when not, every caller is looked up in the database).",
    )
    generator_p95_s: float | None = None
    slo_p95_s: float | None = None
    issues: list[str] | None = None
