"""The assistant panel as a page: chat beside the storyboard it is making.

The page is static HTML plus one script (``web/static/assistant.js``) that talks to the
assistant API and the generation's event stream; no inline script or style, so a strict
Content-Security-Policy holds. Sign-in is the trace viewer's: the same session cookie,
through the same dependency (``PageUser``: a stranger is sent to ``/login``). The storyboard
cards are rendered here, on the server, and the script swaps them in whenever the
generation's event stream says a scene moved on, so what the cards show is exactly the
status document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from imageforge.api.deps import PageUser, StreamUser
from imageforge.api.models.generation import TERMINAL_STATUSES, GenerationStatusDocument, ScenePublic
from imageforge.api.routes.generations import GenerationId, owned_generation
from imageforge.api.services.status import owned_document

__all__ = ["SceneCard", "router"]

router = APIRouter(prefix="/assistant", tags=["assistant page"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "web" / "templates")

#: Root-relative links, so the page works behind a proxy that rewrites the host.
_BASE_URL = "/"


@dataclass(frozen=True)
class SceneCard:
    """One scene of the storyboard as its card shows it."""

    scene: ScenePublic
    kept_from: str | None
    trace_url: str


def _storyboard(app: Any, generation_id: str, user_id: int) -> dict[str, Any]:
    """The template context of the cards: the status document with live progress, and which
    scenes a refinement kept from the storyboard it refined (from the stored request)."""
    with Session(app.state.engine) as session:
        generation = owned_generation(session, generation_id, user_id)
        request = dict(generation.request or {})
    document: GenerationStatusDocument = owned_document(
        engine=app.state.engine,
        documents=app.state.documents,
        live=app.state.runner.live,
        generation_id=generation_id,
        user_id=user_id,
        base_url=_BASE_URL,
    )
    reuse_from = request.get("reuse_from")
    keep = int(request.get("keep_scenes") or 0) if reuse_from else 0
    cards = [
        SceneCard(
            scene=scene,
            kept_from=reuse_from if scene.scene_number <= keep else None,
            trace_url=f"/traces/{generation_id}#scene-{scene.scene_number}",
        )
        for scene in document.storyboard_plan.scenes
    ]
    return {
        "document": document,
        "cards": cards,
        "reuse_from": reuse_from,
        "keep_scenes": keep,
        "live": document.status not in TERMINAL_STATUSES,
        "trace_url": f"/traces/{generation_id}",
    }


@router.get("", response_class=HTMLResponse)
def assistant_page(request: Request, user: PageUser) -> HTMLResponse:
    """The panel: conversations, chat, storyboard. Everything else it loads from the API. A
    browser that is not signed in is sent to the sign-in form, which brings it back here."""
    return templates.TemplateResponse(request, "assistant.html", {"user": user})


@router.get("/storyboard/{generation_id}", response_class=HTMLResponse)
async def storyboard_cards(request: Request, generation_id: GenerationId, user: StreamUser) -> HTMLResponse:
    """The storyboard's cards (an HTML fragment the page swaps in as the job moves on). A 401,
    not a redirect to the sign-in form, when signed out: the script says so in the page."""
    context = await run_in_threadpool(_storyboard, request.app, generation_id, user.id)  # type: ignore[arg-type]
    return templates.TemplateResponse(request, "assistant_storyboard.html", context)
