"""Access tokens for registered users (``imageforge users create`` registers them).

Logins are throttled per account and per client address (``core.throttle``); an unknown
e-mail costs the same hash work as a known one, so neither the answer nor its timing says
which addresses have accounts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import Session

from imageforge.api.core.security import create_access_token
from imageforge.api.core.throttle import LoginThrottle, ThrottledError, ThrottleUnavailableError
from imageforge.api.crud import user as crud
from imageforge.api.deps import SettingsDep
from imageforge.api.models.user import Token, User

__all__ = ["authenticate_request", "login_throttle", "router"]

router = APIRouter(prefix="/api", tags=["login"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Incorrect e-mail or password, or an inactive user."},
    429: {"description": "Too many attempts for this account or from this address; see Retry-After."},
}


def login_throttle(app: object) -> LoginThrottle:
    """The app's throttle, made on first use (Redis-backed when the service runs distributed)."""
    state = app.state  # type: ignore[attr-defined]
    throttle = getattr(state, "login_throttle", None)
    if throttle is None:
        settings = state.settings
        throttle = state.login_throttle = LoginThrottle(
            per_account=settings.login_limit_per_account,
            per_address=settings.login_limit_per_address,
            storage_uri=settings.broker_url or "memory://",
        )
    return throttle


def client_address(request: Request) -> str:
    """The caller's address (behind a proxy, uvicorn's proxy headers make it the real client)."""
    return request.client.host if request.client else "unknown"


def _authenticate(app: object, email: str, password: str) -> User | None:
    with Session(app.state.engine) as session:  # type: ignore[attr-defined]
        return crud.authenticate(session=session, email=email, password=password)


async def authenticate_request(request: Request, email: str, password: str) -> User:
    """The user these credentials name, after the throttle let the attempt through; 429 (with
    Retry-After), 503 or 400 otherwise. Shared by the token endpoint and the sign-in form."""
    throttle = login_throttle(request.app)
    try:
        await run_in_threadpool(throttle.attempt, email, client_address(request))
    except ThrottledError as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), {"Retry-After": str(exc.retry_after_s)}
        ) from exc
    except ThrottleUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Login is unavailable; try again later.") from exc
    user = await run_in_threadpool(_authenticate, request.app, email, password)
    if user is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Incorrect email or password.")
    if not user.is_active:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Inactive user.")
    await run_in_threadpool(throttle.succeeded, email)
    return user


@router.post("/login/access-token", response_model=Token, responses=_RESPONSES)
async def login_access_token(
    request: Request, settings: SettingsDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """OAuth2 password flow: ``username`` is the e-mail address."""
    user = await authenticate_request(request, form.username, form.password)
    return Token(access_token=create_access_token(user, settings))
