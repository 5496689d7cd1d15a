"""Request dependencies as type aliases, so handlers read like plain signatures.

What the lifespan puts on ``app.state`` (the engine, the job runner, the metrics, the default
backends, the OpenAI-images settings) reaches handlers only through these."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Query, Request, WebSocket, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.config import OpenAIImagesSettings, Settings
from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.core.security import InvalidTokenError, TokenClaims, decode_access_token
from imageforge.api.crud import user as crud
from imageforge.api.models.user import User
from imageforge.api.services.backends import DefaultBackends
from imageforge.api.services.job_queue import JobQueue
from imageforge.api.services.user_cache import UserCache

__all__ = [
    "SESSION_COOKIE",
    "BackendsDep",
    "CurrentUser",
    "ImagesSettingsDep",
    "MetricsDep",
    "OptionalUser",
    "PageUser",
    "RunnerDep",
    "SessionDep",
    "SettingsDep",
    "StreamUser",
    "TokenDep",
    "authenticate",
    "get_current_user",
    "get_page_user",
    "images_settings",
    "require_admin",
    "sign_in_location",
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


async def get_runner(request: Request) -> JobQueue:
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
RunnerDep = Annotated[JobQueue, Depends(get_runner)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
BackendsDep = Annotated[DefaultBackends, Depends(get_backends)]
ImagesSettingsDep = Annotated[OpenAIImagesSettings, Depends(get_images_settings)]
TokenDep = Annotated[str | None, Depends(_oauth2)]

# The accessors above are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the
# thread pool, and a thread hop per trivial accessor adds up on the status-polling hot path.

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, f"Could not validate credentials: {reason}.", _UNAUTHORIZED)


def _claims(settings: Settings, token: str | None) -> TokenClaims:
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Not authenticated: send `Authorization: Bearer <token>`.", _UNAUTHORIZED
        )
    try:
        return decode_access_token(token, settings)
    except InvalidTokenError as exc:
        raise _unauthorized(str(exc)) from exc


def _holder(user: User | None, claims: TokenClaims) -> User:
    """``user`` if the token is still theirs (active, and the token's version still theirs, so
    deactivation or a password change bites at once); 401 otherwise."""
    if user is None or not user.is_active:
        raise _unauthorized("unknown or inactive user")
    if user.token_version != claims.version:
        raise _unauthorized("the token has been revoked (password changed or account deactivated); sign in again")
    return user


def _lookup(app: Any, public_id: str) -> User | None:
    with Session(app.state.reader) as session:
        return crud.get_user_by_public_id(session=session, public_id=public_id)


def _dev_user(app: Any) -> User:
    with Session(app.state.reader) as session:
        return crud.get_or_create_dev_user(session=session)


async def authenticate(app: Any, token: str | None) -> User:
    """The caller a token names, checked on every request; the dev user in dev mode. A
    distributed API process answers from its ``UserCache`` while that is confirmed current (no
    thread hop, no query); otherwise, and always in embedded mode, one indexed query."""
    settings: Settings = app.state.settings
    if settings.dev_mode:
        return await run_in_threadpool(_dev_user, app)
    claims = _claims(settings, token)
    users: UserCache | None = getattr(app.state, "users", None)
    user = users.get(claims.subject) if users is not None else None
    if user is None:
        version = users.version if users is not None else 0
        user = await run_in_threadpool(_lookup, app, claims.subject)
        if users is not None and user is not None and user.is_active:
            users.fill(version, user)
    return _holder(user, claims)


async def get_current_user(request: Request, token: TokenDep) -> User:
    return await authenticate(request.app, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_optional_user(request: Request, token: TokenDep) -> User | None:
    """The caller when they sent a token (401 for a bad one), None for an anonymous call."""
    settings: Settings = request.app.state.settings
    if not token and not settings.dev_mode:
        return None
    return await authenticate(request.app, token)


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
"""For endpoints that answer everyone but tell a signed-in caller more (``/health``)."""


def require_admin(user: User) -> User:
    if not user.is_superuser:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This needs an administrator account.")
    return user


#: Cookie set by the sign-in page (``/login``) so that the pages, images and event streams a
#: browser loads are authenticated without headers. Honoured on GET only, so it can never
#: authorise a change; SameSite=strict keeps it off cross-site requests.
SESSION_COOKIE = "imageforge_token"


def _cookie_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) if request.method in ("GET", "HEAD") else None


async def get_stream_user(
    request: Request,
    header_token: TokenDep,
    token: Annotated[
        str | None, Query(description="The bearer token, for clients that cannot set headers (EventSource, <img>).")
    ] = None,
) -> User:
    return await get_current_user(request, header_token or token or _cookie_token(request))


StreamUser = Annotated[User, Depends(get_stream_user)]
"""The caller of a GET that browsers load directly (images, EventSource):
``Authorization: Bearer``, ``?token=`` or the sign-in cookie."""


def sign_in_location(request: Request) -> str:
    """Where a page sends a caller who is not signed in: the sign-in form, told to come back
    (without a ``token`` parameter: a token in an address is never carried along)."""
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
    return "/login?" + urlencode({"next": request.url.path + (f"?{query}" if query else "")})


async def get_page_user(request: Request, header_token: TokenDep) -> User:
    """The caller of an HTML page: ``Authorization: Bearer`` or the sign-in cookie, never a token
    in the address. A caller without valid credentials is sent to the sign-in form (303)."""
    token = header_token or _cookie_token(request)
    try:
        return await get_current_user(request, token)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_401_UNAUTHORIZED or header_token:
            raise
        raise HTTPException(
            status.HTTP_303_SEE_OTHER, "Sign in first.", {"Location": sign_in_location(request)}
        ) from exc


PageUser = Annotated[User, Depends(get_page_user)]
"""The caller of a server-rendered page (trace viewer, assistant): see ``get_page_user``."""


def websocket_token(websocket: WebSocket) -> str | None:
    """A WebSocket's token: ``?token=`` (browsers cannot set headers) or the Authorization header."""
    token = websocket.query_params.get("token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
