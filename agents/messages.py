"""The user turn each LLM agent sends: instructions, then its inputs as one JSON block.

Structured inputs (the scene, the markers, the previous prompt and its critique) go to the
model as JSON rather than prose so that nothing is lost in paraphrase, and so that a test
double can read them back (``read_payload``) and answer as the heuristic agent would.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["read_payload", "user_message"]

_BLOCK = re.compile(r"```json\n(.*?)\n```", re.DOTALL)


def user_message(instructions: str, payload: dict[str, Any]) -> str:
    """``instructions`` followed by ``payload`` in a fenced JSON block."""
    return f"{instructions.strip()}\n\n```json\n{json.dumps(payload, indent=2, ensure_ascii=False)}\n```"


def read_payload(text: str) -> dict[str, Any]:
    """The JSON block of a message built by ``user_message``."""
    match = _BLOCK.search(text)
    if match is None:
        raise ValueError(f"`text` holds no ```json block: {text[:80]!r}")
    return json.loads(match.group(1))
