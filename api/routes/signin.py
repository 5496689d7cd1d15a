"""Signing in to the server-rendered pages (trace viewer, assistant) without a token in the address.

``GET /login`` shows a form; ``POST /login`` takes an e-mail and password (throttled like the
token endpoint) or a pasted access token, and sets the session cookie that pages, images and
event streams read on GET. A sign-in POST from another site is refused (``Sec-Fetch-Site`` /
``Origin``), so a link or a hidden form cannot plant someone else's session in a browser; the
cookie is HttpOnly, SameSite=strict, and Secure when the request came over HTTPS. Where to go
next is only ever a path on this server, re-encoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from imageforge.api.core.config import Settings
from imageforge.api.core.security import create_access_token
from imageforge.api.deps import SESSION_COOKIE, SettingsDep, authenticate
from imageforge.api.routes.login import authenticate_request

__all__ = ["router", "safe_next", "same_origin", "set_session_cookie"]

router = APIRouter(tags=["sign-in"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "web" / "templates")

DEFAULT_NEXT = "/traces"
#: Sec-Fetch-Site values of a request this server's own page made (or the user typed).
_OWN_SITE = frozenset({"same-origin", "none"})


def safe_next(value: str | None) -> str:
    """A path on this server to go to after signing in, re-encoded; anything else (another host,
    ``//host``, a scheme, backslashes) becomes the trace list. A ``token`` parameter is dropped."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or "\\" in value:
        return DEFAULT_NEXT
    try:
        parts = urlsplit(value)
    except ValueError:
        return DEFAULT_NEXT
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    path = quote(unquote(parts.path), safe="/-._~!$&'()*+,;=:@")
    if path.startswith("//"):
        return DEFAULT_NEXT
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"])
    return path + (f"?{query}" if query else "")


def same_origin(request: Request) -> bool:
    """Whether a state-changing browser request came from this server's own pages. Browsers
    send ``Sec-Fetch-Site`` (and ``Origin`` on every POST); a client that sends neither is not a
    browser and cannot be tricked into carrying a cookie it did not ask for."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in _OWN_SITE:
        return False
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.url.netloc}"
        return origin == own
    return True


def set_session_cookie(response: Response, request: Request, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.access_token_expire_minutes * 60,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",  # behind a TLS proxy: uvicorn's proxy headers set the scheme
    )


def _form(
    request: Request, next_path: str, *, error: str | None = None, email: str | None = None, code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "login.html", {"next": next_path, "error": error, "email": email}, status_code=code
    )


@router.get("/login", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _form(request, safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=255)] = "",
    password: Annotated[str, Form(max_length=128)] = "",
    token: Annotated[str, Form(max_length=4096)] = "",
    next: Annotated[str, Form(max_length=2048)] = DEFAULT_NEXT,
) -> Response:
    """Sign in with an e-mail and password, or with an access token; 303 to ``next``."""
    if not same_origin(request):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Sign-in refused: the form was not sent from this server's page."
        )
    target = safe_next(next)
    if token:
        try:
            await authenticate(request.app, token)  # the same checks as a bearer token's
        except HTTPException as exc:
            if exc.status_code != status.HTTP_401_UNAUTHORIZED:
                raise
            return _form(request, target, error=str(exc.detail), code=status.HTTP_401_UNAUTHORIZED)
        session_token = token
    else:
        if not email or not password:
            return _form(request, target, error="Enter an e-mail and password, or a token.", code=422)
        try:
            user = await authenticate_request(request, email, password)
        except HTTPException as exc:
            if exc.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
                response = _form(request, target, error=str(exc.detail), email=email, code=exc.status_code)
                response.headers.update(exc.headers or {})
                return response
            if exc.status_code != status.HTTP_400_BAD_REQUEST:
                raise
            return _form(request, target, error=str(exc.detail), email=email, code=status.HTTP_400_BAD_REQUEST)
        session_token = create_access_token(user, settings)
    redirect = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    set_session_cookie(redirect, request, session_token, settings)
    return redirect


@router.post("/logout")
def sign_out(request: Request) -> Response:
    """Forget the session cookie (the token itself stays valid until it expires or is revoked)."""
    if not same_origin(request):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Sign-out refused: the form was not sent from this server's page."
        )
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response
