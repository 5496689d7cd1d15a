"""Secrets out of whatever the service shows or stores: URLs, settings dumps, log lines.

An endpoint URL may carry credentials in two places, ``user:password@`` and the query
(``?api-key=…``); a settings dump carries them under names like ``api_key``. Redaction keeps
the shape (scheme, host, path, parameter names) so that an operator can still tell which
endpoint is configured, and replaces only the secret parts with ``***``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "is_secret_name", "redact", "redact_path", "redact_text", "redact_url"]

MASK = "***"

#: Names whose values are secrets wherever they appear (settings fields, query parameters).
_SECRET_NAME = re.compile(r"(pass(word)?|secret|token|api[-_]?key|key|auth|credential|signature|sig)$", re.I)
#: URLs inside free text (log messages, notes, error strings).
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.replace("-", "_")))


def _redact_query(query: str) -> str:
    """Every query value goes: which parameters a request carried is rarely a secret, their
    values (``token=``, ``api-key=``, signed-URL signatures) often are."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        return MASK
    return urlencode([(name, MASK) for name, _ in pairs], safe="*")


def redact_url(url: str) -> str:
    """``url`` without the password of its user part and without its query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if user else f"{MASK}@{host}"
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, _redact_query(parts.query), parts.fragment))


def redact_path(path: str) -> str:
    """A request path (what an access log prints) without its query values."""
    target, sep, query = path.partition("?")
    return target + sep + _redact_query(query) if sep else path


def redact_text(text: str) -> str:
    """Free text with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def redact(value: Any, *, name: str = "") -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) without secrets: values under a
    secret-looking key become ``***`` (``None`` and booleans stay: whether a key is set is not
    a secret), URLs in strings are redacted."""
    if isinstance(value, dict):
        return {key: redact(item, name=str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, name=name) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if name and is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value
