"""Request dependencies as type aliases, so handlers read like plain signatures.

What the lifespan puts on ``app.state`` (the engine, the job runner, the metrics, the default
backends, the OpenAI-images settings) reaches handlers only through these."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, WebSocket, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.config import OpenAIImagesSettings, Settings
from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.core.security import InvalidTokenError, decode_access_token
from imageforge.api.crud import user as crud
from imageforge.api.models.user import User
from imageforge.api.services.backends import DefaultBackends
from imageforge.api.services.jobs import JobRunner

__all__ = [
    "BackendsDep",
    "CurrentUser",
    "ImagesSettingsDep",
    "MetricsDep",
    "RunnerDep",
    "SessionDep",
    "SettingsDep",
    "StreamUser",
    "TokenDep",
    "cached_user_id",
    "get_current_user",
    "images_settings",
    "load_user",
    "token_user_id",
    "user_from_token",
]

TOKEN_URL = "/api/login/access-token"
_oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_db(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


async def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_backends(request: Request) -> DefaultBackends:
    return request.app.state.backends


def images_settings(app: Any) -> OpenAIImagesSettings:
    """The /v1/images settings the lifespan read (or a test set) on ``app.state``."""
    images = getattr(app.state, "openai_images_settings", None)
    if images is None:
        images = app.state.openai_images_settings = app.state.settings.openai_images
    return images


async def get_images_settings(request: Request) -> OpenAIImagesSettings:
    return images_settings(request.app)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_db)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
BackendsDep = Annotated[DefaultBackends, Depends(get_backends)]
ImagesSettingsDep = Annotated[OpenAIImagesSettings, Depends(get_images_settings)]
TokenDep = Annotated[str | None, Depends(_oauth2)]

# The accessors above are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the
# thread pool, and a thread hop per trivial accessor adds up on the status-polling hot path.

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def token_user_id(settings: Settings, token: str | None) -> int:
    """The user id a bearer token names, verified (signature, expiry); 401 otherwise."""
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Not authenticated: send `Authorization: Bearer <token>`.", _UNAUTHORIZED
        )
    try:
        return int(decode_access_token(token, settings))
    except (InvalidTokenError, ValueError) as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"Could not validate credentials: {exc}", _UNAUTHORIZED
        ) from exc


def user_from_token(session: Session, settings: Settings, token: str | None) -> User:
    """The user a bearer token names; the dev user in dev mode. Raises 401 otherwise."""
    if settings.dev_mode:
        return crud.get_or_create_dev_user(session=session)
    user_id = token_user_id(settings, token)
    user = crud.get_user(session=session, user_id=user_id)
    if user is None or not user.is_active:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Could not validate credentials: unknown or inactive user.", _UNAUTHORIZED
        )
    return user


def cached_user_id(app: Any, token: str | None) -> int | None:
    """The caller's id without touching the database when possible: the token is verified
    here, and the user's being active comes from ``app.state.user_cache``. ``None`` means
    "look the user up" (and then remember them). Raises 401 for a bad token."""
    settings: Settings = app.state.settings
    if settings.dev_mode:
        return app.state.dev_user_id
    user_id = token_user_id(settings, token)
    return user_id if app.state.user_cache.get(user_id) is not None else None


def load_user(app: Any, token: str | None) -> User:
    """The caller from the database (blocking), remembered in ``app.state.user_cache``."""
    with Session(app.state.engine) as session:
        user = user_from_token(session, app.state.settings, token)
    app.state.user_cache.remember(user.id, user)
    return user


async def get_current_user(request: Request, token: TokenDep) -> User:
    """The caller. ``async`` so that a cached user costs no trip to the thread pool; the
    token is verified on every request either way."""
    app = request.app
    user_id = cached_user_id(app, token)
    user: User | None = app.state.user_cache.get(user_id) if user_id is not None else None
    if user is None:
        user = await run_in_threadpool(load_user, app, token)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


#: Cookie set by the trace viewer so that the images and the event stream a page loads are
#: authenticated without headers. Honoured on GET only, so it can never authorise a change.
SESSION_COOKIE = "imageforge_token"


async def get_stream_user(
    request: Request,
    header_token: TokenDep,
    token: Annotated[
        str | None, Query(description="The bearer token, for clients that cannot set headers (EventSource, <img>).")
    ] = None,
) -> User:
    cookie = request.cookies.get(SESSION_COOKIE) if request.method in ("GET", "HEAD") else None
    return await get_current_user(request, header_token or token or cookie)


StreamUser = Annotated[User, Depends(get_stream_user)]
"""The caller of a GET that browsers load directly (pages, images, EventSource):
``Authorization: Bearer``, ``?token=`` or the viewer's session cookie."""


def websocket_token(websocket: WebSocket) -> str | None:
    """A WebSocket's token: ``?token=`` (browsers cannot set headers) or the Authorization header."""
    token = websocket.query_params.get("token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
