"""Choosing the generator from the backend settings."""

from __future__ import annotations

import pytest

from graph.context import BackendSettings
from tools import registry
from tools.registry import build_generator
from tools.sketch import SketchGenerator


@pytest.mark.parametrize("backend", ["auto", "sketch"])
def test_sketch_for_auto_and_sketch(backend):
    generator, line = build_generator(BackendSettings(generator=backend))
    assert isinstance(generator, SketchGenerator)
    assert line == (
        "Generator: sketch (offline composition frames). Install weights with `imageforge models pull sd-turbo` "
        "or pass --generator diffusers --generator-model PATH for real images."
    )


@pytest.mark.parametrize("backend", ["diffusers", "openai"])
def test_real_backends_not_available_yet(backend):
    with pytest.raises(ValueError, match=f"'{backend}' is not available yet"):
        build_generator(BackendSettings(generator=backend))


def test_registered_backend_is_used(monkeypatch):
    made = []

    def factory(backends):
        made.append(backends.generator_model)
        return SketchGenerator(), "Generator: test"

    monkeypatch.setitem(registry.GENERATOR_FACTORIES, "diffusers", factory)
    _, line = build_generator(
        BackendSettings(generator="diffusers", generator_model="/models/tiny")
    )
    assert line == "Generator: test"
    assert made == ["/models/tiny"]
