"""Fixtures shared across the suite."""

from __future__ import annotations

import pytest

from factories import make_context
from graph.context import Context


@pytest.fixture
def context(tmp_path) -> Context:
    """A fast offline run context writing under the test's temporary folder."""
    return make_context(tmp_path)
