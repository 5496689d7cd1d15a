"""The interactive API docs (Swagger UI, ReDoc) under the pages' CSP.

FastAPI's own docs pages carry an inline script, which a policy without ``'unsafe-inline'``
blocks; these are the same pages with the request's nonce on every script tag and a policy
that also allows the CDN the pages load Swagger UI and ReDoc from.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from imageforge.api.core.headers import page_csp

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

OAUTH2_REDIRECT = "/docs/oauth2-redirect"
_CDN = "https://cdn.jsdelivr.net"


def _with_nonce(page: HTMLResponse, request: Request, *, style: str, img: str, font: str = "") -> HTMLResponse:
    nonce = request.state.csp_nonce
    body = bytes(page.body).decode().replace("<script", f'<script nonce="{nonce}"')
    policy = page_csp(nonce, script=_CDN, style=style, img=img)
    if font:
        policy += f"; font-src {font}; worker-src blob:"
    return HTMLResponse(body, headers={"Content-Security-Policy": policy})


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} - docs", oauth2_redirect_url=OAUTH2_REDIRECT
    )
    return _with_nonce(page, request, style=f"'self' {_CDN} 'unsafe-inline'", img="'self' data: https:")


@router.get(OAUTH2_REDIRECT)
def swagger_ui_redirect(request: Request) -> HTMLResponse:
    return _with_nonce(get_swagger_ui_oauth2_redirect_html(), request, style="'self'", img="'self'")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - ReDoc")
    return _with_nonce(
        page,
        request,
        style="'self' https://fonts.googleapis.com 'unsafe-inline'",
        img="'self' data: https:",
        font="https://fonts.gstatic.com",
    )
