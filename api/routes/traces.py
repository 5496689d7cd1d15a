"""A generation's trace: the JSON view through the trace reader, and its files."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import FileResponse

from imageforge.api.deps import CurrentUser, SessionDep, SettingsDep, StreamUser
from imageforge.api.routes import Responses
from imageforge.api.routes.generations import GenerationId, owned_generation
from imageforge.traces.reader import (
    CorruptTraceError,
    TraceDocument,
    TraceNotFoundError,
    read_trace,
    resolve_trace_file,
)

router = APIRouter(prefix="/api/generations", tags=["traces"])

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
_FILE_RESPONSES: Responses = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file."},
    400: {"description": "The path leaves the trace folder or is malformed."},
    404: {"description": "No such generation or file."},
}
#: A trace file that does not parse: the caller learns that, not the file's path or content.
CORRUPT_TRACE = "This generation's trace is damaged (a file does not parse) and cannot be shown."
TracePath = Annotated[str, Path(min_length=1, max_length=500, description="Relative to the generation's trace folder.")]


def _trace_file(settings_root: FilePath, generation_id: str, relative: str) -> FilePath:
    try:
        return resolve_trace_file(settings_root, generation_id, relative)
    except TraceNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No file {relative!r} in this generation's trace.") from exc
    except (ValueError, OSError) as exc:  # traversal, NUL bytes, names the OS refuses (messages name server paths)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            [
                {
                    "loc": ["path", "path"],
                    "msg": f"invalid trace path {relative!r}: it must name a file inside the generation's trace",
                    "type": "value_error",
                }
            ],
        ) from exc


@router.get("/{generation_id}/trace", response_model=TraceDocument, responses={404: {"description": "No trace yet."}})
def get_trace(
    generation_id: GenerationId, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> TraceDocument:
    """summary.json with every scene's enhancement and result, and the list of files."""
    owned_generation(session, generation_id, user.id)  # type: ignore[arg-type]
    try:
        return read_trace(settings.trace_root, generation_id)
    except TraceNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Generation {generation_id!r} has no trace yet.") from exc
    except CorruptTraceError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, CORRUPT_TRACE) from exc


@router.get("/{generation_id}/trace/files/{path:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
def get_trace_file(
    generation_id: GenerationId, path: TracePath, session: SessionDep, user: StreamUser, settings: SettingsDep
) -> FileResponse:
    """One trace file; paths that resolve outside the generation's folder are refused."""
    owned_generation(session, generation_id, user.id)  # type: ignore[arg-type]
    return FileResponse(_trace_file(settings.trace_root, generation_id, path))


@router.get("/{generation_id}/images/{path:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
def get_image(
    generation_id: GenerationId, path: TracePath, session: SessionDep, user: StreamUser, settings: SettingsDep
) -> FileResponse:
    """An image of the generation (the status document's image URLs point here)."""
    owned_generation(session, generation_id, user.id)  # type: ignore[arg-type]
    if FilePath(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{path!r} is not an image; other trace files are under /trace/files/.",
        )
    return FileResponse(_trace_file(settings.trace_root, generation_id, path))
