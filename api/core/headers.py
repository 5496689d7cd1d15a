"""Security headers on every response, and the per-request nonce the pages' scripts carry.

HTML pages get a Content-Security-Policy that allows scripts from this server and those
carrying the request's nonce only (no ``'unsafe-inline'``), no framing (``frame-ancestors
'none'``), and forms that post only here; every response gets ``nosniff``, a referrer policy
and ``X-Frame-Options``; HTTPS responses get HSTS. A route that sets its own CSP (the API docs,
which load Swagger UI from its CDN) keeps it. Templates read the nonce as
``request.state.csp_nonce``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["SecurityHeadersMiddleware", "page_csp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def page_csp(nonce: str, *, script: str = "", style: str = "'self'", img: str = "'self' data:") -> str:
    """The policy of an HTML page; ``script`` adds sources to ``'self'`` and the nonce."""
    scripts = " ".join(part for part in ("'self'", f"'nonce-{nonce}'", script) if part)
    return (
        f"default-src 'self'; script-src {scripts}; style-src {style}; img-src {img}; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


#: Anything that is not a page (JSON, images, event streams) runs nothing and embeds nothing.
RESOURCE_CSP = "default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                html = content_type.startswith(b"text/html")
                wanted = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"same-origin",  # "no-referrer" makes browsers send `Origin: null`
                    b"x-frame-options": b"DENY",
                    b"content-security-policy": (page_csp(nonce) if html else RESOURCE_CSP).encode(),
                }
                if https:
                    wanted[b"strict-transport-security"] = b"max-age=31536000"
                headers.extend((name, value) for name, value in wanted.items() if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
