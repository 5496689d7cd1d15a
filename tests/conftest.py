"""Fixtures shared across the suite."""

from __future__ import annotations

import pytest
from factories import make_context

from imageforge.graph.context import Context


@pytest.fixture(autouse=True)
def empty_model_cache(tmp_path_factory, monkeypatch):
    """Tests never see the machine's Hugging Face cache: `auto` must behave as offline."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def context(tmp_path) -> Context:
    """A fast offline run context writing under the test's temporary folder."""
    return make_context(tmp_path)
