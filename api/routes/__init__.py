"""One router per URL prefix; handlers validate, call a crud function or a service, and return a
``*Public`` model. Errors are answered by the exception handlers of ``api.main``."""

from __future__ import annotations

from typing import Any

__all__ = ["Responses"]

Responses = dict[int | str, dict[str, Any]]
"""The ``responses=`` documentation of a route: status code -> OpenAPI response object."""
