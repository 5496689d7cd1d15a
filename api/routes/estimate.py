"""What a storyboard will cost before it runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from imageforge.api.deps import SettingsDep
from imageforge.api.models.operations import EstimatePublic
from imageforge.api.services.estimate import EstimateQuery, estimate, measured_calls

router = APIRouter(prefix="/api", tags=["estimate"])


@router.get("/estimate", response_model=EstimatePublic)
def get_estimate(query: Annotated[EstimateQuery, Query()], settings: SettingsDep) -> EstimatePublic:
    """Images, time and cost for these settings: seed 004's tables, with the LLM's per-call tokens
    and seconds measured over this deployment's recent runs when there are any (``measured``)."""
    try:
        return estimate(query, settings, measured_calls(settings.trace_root))
    except ValueError as exc:  # a backend the deployment has no price for
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["query", "generator"], "msg": str(exc), "type": "value_error"}],
        ) from exc
