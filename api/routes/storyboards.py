"""Several storyboards in one request, each validated and queued on its own."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from imageforge.api.deps import CurrentUser, RunnerDep, SettingsDep
from imageforge.api.models.generation import GenerationCreate
from imageforge.api.models.operations import BatchItemResult, BatchPublic, BatchRequest
from imageforge.api.services.jobs import QueueFullError
from imageforge.api.services.submission import submit

router = APIRouter(prefix="/api/storyboards", tags=["storyboards"])


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "item"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchPublic)
async def create_batch(
    body: BatchRequest, user: CurrentUser, runner: RunnerDep, settings: SettingsDep, request: Request
) -> BatchPublic:
    """One generation per valid item; an invalid item (or one the full queue refused) is
    reported with its index and the reason, and does not affect the others."""
    if len(body.items) > settings.max_batch_items:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["body", "items"],
                    "msg": f"at most {settings.max_batch_items} items per batch, got {len(body.items)}",
                    "type": "too_long",
                }
            ],
        )
    results: list[BatchItemResult] = []
    for index, item in enumerate(body.items):
        try:
            create = GenerationCreate.model_validate(item)
        except ValidationError as exc:
            errors = json.loads(exc.json(include_url=False, include_input=False))
            results.append(BatchItemResult(index=index, accepted=False, reason=_reason(exc), errors=errors))
            continue
        try:
            accepted = await submit(
                runner=runner,
                engine=request.app.state.engine,
                settings=settings,
                user_id=user.id,  # type: ignore[arg-type]
                create=create,
                base_url=str(request.base_url),
            )
        except QueueFullError as exc:
            results.append(BatchItemResult(index=index, accepted=False, reason=str(exc)))
            continue
        except RequestValidationError as exc:  # an unknown preset or character
            errors = [
                {**e, "loc": e["loc"][1:]} for e in jsonable_encoder(exc.errors())
            ]  # item-relative, like the others
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
            results.append(BatchItemResult(index=index, accepted=False, reason=reason, errors=errors))
            continue
        results.append(
            BatchItemResult(
                index=index,
                accepted=True,
                generation_id=accepted.generation_id,
                status_url=accepted.status_url,
                events_url=accepted.events_url,
            )
        )
    accepted_count = sum(1 for r in results if r.accepted)
    return BatchPublic(results=results, accepted=accepted_count, rejected=len(results) - accepted_count)
