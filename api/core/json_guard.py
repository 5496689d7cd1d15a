"""JSON bodies that JSON itself does not allow, refused as a 422 before any handler sees them.

Python's ``json`` module (which Starlette parses request bodies with) accepts ``NaN``,
``Infinity`` and ``-Infinity`` and decodes ``"\\ud800"`` into a lone surrogate. None of them is
valid JSON or valid Unicode: stored, they break every later encode (a status document, a trace
file, the database's JSON column), and echoed back in a validation error they made the error
handler itself fail with a 500. So a body carrying one is refused up front, naming where it
was, and the validation handler encodes whatever input it echoes without failing
(:func:`encodable`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection, Request

__all__ = ["encodable", "reject_invalid_json_values"]

#: Byte patterns without which a body cannot hold a non-finite number or a lone surrogate: NaN
#: and Infinity are bare words, a surrogate arrives as a ``\\uD8xx``-``\\uDFxx`` escape or as
#: raw CESU-8 bytes (``json.loads`` decodes bytes with ``surrogatepass``). Bodies without any
#: of them (nearly all) skip the walk.
_SUSPECT = (b"NaN", b"Infinity", b"\\ud", b"\\uD", b"\xed")


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _invalid_values(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[dict[str, Any]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield {
            "type": "finite_number",
            "loc": ("body", *loc),
            "msg": f"{_float_name(value)} is not a JSON number; send a finite number.",
            "input": None,
        }
    elif isinstance(value, str):
        if _has_surrogate(value):
            yield {
                "type": "string_unicode",
                "loc": ("body", *loc),
                "msg": "Text contains a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair), "
                "which is not valid Unicode.",
                "input": None,
            }
    elif isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogate(key):
                yield {
                    "type": "string_unicode",
                    "loc": ("body", *loc),
                    "msg": "A key contains a lone UTF-16 surrogate, which is not valid Unicode.",
                    "input": None,
                }
            else:
                yield from _invalid_values(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _invalid_values(item, (*loc, index))


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


async def reject_invalid_json_values(connection: HTTPConnection) -> None:
    """App-wide dependency: a JSON body with NaN, Infinity or a lone surrogate is a 422.

    It runs after FastAPI has read and parsed the body (both cached on the request), so it costs
    a byte scan per JSON request and a walk only for the rare body that matches.
    """
    if not isinstance(connection, Request) or connection.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return
    content_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return
    body = await connection.body()
    if not any(pattern in body for pattern in _SUSPECT):
        return
    try:
        parsed = await connection.json()
    except ValueError:
        return  # FastAPI has already answered a body that does not parse
    errors = list(_invalid_values(parsed))
    if errors:
        raise RequestValidationError(errors)


def encodable(value: Any) -> Any:
    """``value`` (already through ``jsonable_encoder``) with what strict JSON cannot carry made
    printable: non-finite floats become their names, lone surrogates ``\\udXXX`` escapes."""
    if isinstance(value, float) and not math.isfinite(value):
        return _float_name(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if _has_surrogate(value) else value
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value
