"""The trace viewer: server-rendered pages over a generation's trace, updated live by SSE.

No build step: Jinja templates and a small script file (api/web/static). The page reads the
trace with the same reader the JSON API uses, so what an engineer sees is exactly what was
recorded. Pages authenticate with the sign-in cookie (``routes.signin``) or a bearer header;
a caller who is not signed in is sent to ``/login``.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from imageforge.api.crud import generation as crud
from imageforge.api.deps import PageUser, SessionDep, SettingsDep
from imageforge.api.routes.generations import GenerationId, owned_generation
from imageforge.api.routes.traces import CORRUPT_TRACE
from imageforge.api.services.trace_view import DIMENSIONS, scene_views
from imageforge.graph.events import EventType
from imageforge.traces import layout
from imageforge.traces.reader import CorruptTraceError, TraceNotFoundError, read_trace

router = APIRouter(prefix="/traces", tags=["viewer"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "web" / "templates")

LIVE_STATUSES = frozenset({"queued", "running"})


@router.get("", response_class=HTMLResponse)
def list_page(request: Request, session: SessionDep, user: PageUser) -> HTMLResponse:
    """The caller's generations, newest first, each linking to its trace page."""
    generations, _ = crud.list_generations(session=session, user_id=user.id, status=None, skip=0, limit=200)  # type: ignore[arg-type]
    return templates.TemplateResponse(request, "traces.html", {"generations": generations, "signed_in": True})


@router.get("/{generation_id}", response_class=HTMLResponse)
def trace_page(
    request: Request,
    generation_id: GenerationId,
    session: SessionDep,
    user: PageUser,
    settings: SettingsDep,
    fragment: bool = Query(False, description="Only the live part, for in-page refreshes."),
) -> HTMLResponse:
    generation = owned_generation(session, generation_id, user.id)  # type: ignore[arg-type]
    document = None
    error = None
    try:
        document = read_trace(settings.trace_root, generation_id)
    except TraceNotFoundError:
        error = "No trace yet: the job has not started writing."
    except CorruptTraceError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, CORRUPT_TRACE) from exc
    folder = layout.generation_dir(settings.trace_root, generation_id)
    context = {
        "generation": generation,
        "document": document,
        "error": error,
        "scenes": scene_views(document, folder) if document else [],
        "dimensions": DIMENSIONS,
        "live": generation.status in LIVE_STATUSES,
        "files_url": f"/api/generations/{generation_id}/trace/files/",
        "events_url": f"/api/generations/{generation_id}/events",
        "event_names": [*get_args(EventType), "state"],
        "signed_in": True,
    }
    return templates.TemplateResponse(request, "trace_fragment.html" if fragment else "trace.html", context)
