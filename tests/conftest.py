"""Fixtures shared across the suite, and a guard on how our code is imported."""

from __future__ import annotations

import gc
import importlib.abc
import sys

import pytest
from factories import make_context

from imageforge.graph.context import Context


class _BareLayerImports(importlib.abc.MetaPathFinder):
    """Fail an import of a layer folder by its bare name (``agents``, ``tools``, ...).

    The repository root is on ``sys.path`` under ``python -m pytest``, so ``import agents`` (or
    ``importlib.resources.files("agents")``) would work here and fail for every installed user,
    whose only package is ``imageforge``. This makes the tests see what users see.
    """

    LAYERS = frozenset({"agents", "api", "graph", "scoring", "tools", "traces"})

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] in self.LAYERS:
            raise ModuleNotFoundError(f"No module named {fullname!r}: import imageforge.{fullname} instead")
        return None


sys.meta_path.insert(0, _BareLayerImports())


@pytest.fixture(autouse=True)
def empty_model_cache(tmp_path_factory, monkeypatch):
    """Tests never see the machine's Hugging Face cache: `auto` must behave as offline."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _unfreeze_the_heap():
    """Every app or worker a test starts freezes the heap at start-up (api.core.heap); give
    what it froze back to the collector afterwards, so one test's objects do not outlive it."""
    yield
    gc.unfreeze()


@pytest.fixture
def context(tmp_path) -> Context:
    """A fast offline run context writing under the test's temporary folder."""
    return make_context(tmp_path)
