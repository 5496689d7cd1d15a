"""The trace viewer: server-rendered pages over a generation's trace, updated live by SSE.

No build step: Jinja templates and a few lines of JavaScript. The page reads the trace with
the same reader the JSON API uses, so what an engineer sees is exactly what was recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from imageforge.api.crud import generation as crud
from imageforge.api.deps import SESSION_COOKIE, SessionDep, SettingsDep, StreamUser
from imageforge.api.routes.generations import GenerationId, owned_generation
from imageforge.api.services.trace_view import DIMENSIONS, scene_views
from imageforge.graph.events import EventType
from imageforge.traces import layout
from imageforge.traces.reader import CorruptTraceError, TraceNotFoundError, read_trace

router = APIRouter(prefix="/traces", tags=["viewer"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "web" / "templates")

LIVE_STATUSES = frozenset({"queued", "running"})


def _login_redirect(request: Request) -> RedirectResponse | None:
    """Opening a page with ``?token=`` stores it in an HttpOnly cookie and drops it from the URL,
    so that the page's images and event stream are authenticated and the token stays out of
    the address bar and the history."""
    token = request.query_params.get("token")
    if not token:
        return None
    query = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "token")
    response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("", response_class=HTMLResponse)
def list_page(request: Request, session: SessionDep, user: StreamUser) -> HTMLResponse:
    """The caller's generations, newest first, each linking to its trace page."""
    if (redirect := _login_redirect(request)) is not None:
        return redirect  # type: ignore[return-value]
    generations, _ = crud.list_generations(session=session, user_id=user.id, status=None, skip=0, limit=200)  # type: ignore[arg-type]
    return templates.TemplateResponse(request, "traces.html", {"generations": generations})


@router.get("/{generation_id}", response_class=HTMLResponse)
def trace_page(
    request: Request,
    generation_id: GenerationId,
    session: SessionDep,
    user: StreamUser,
    settings: SettingsDep,
    fragment: bool = Query(False, description="Only the live part, for in-page refreshes."),
) -> HTMLResponse:
    if (redirect := _login_redirect(request)) is not None:
        return redirect  # type: ignore[return-value]
    generation = owned_generation(session, generation_id, user.id)  # type: ignore[arg-type]
    document = None
    error = None
    try:
        document = read_trace(settings.trace_root, generation_id)
    except TraceNotFoundError:
        error = "No trace yet: the job has not started writing."
    except CorruptTraceError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"A trace file does not parse: {exc}") from exc
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
    }
    return templates.TemplateResponse(request, "trace_fragment.html" if fragment else "trace.html", context)
