"""Choosing the generator from the backend settings."""

from __future__ import annotations

import pytest

from imageforge.graph.context import BackendSettings
from imageforge.tools import registry
from imageforge.tools.registry import build_generator
from imageforge.tools.sketch import SketchGenerator


@pytest.mark.parametrize("backend", ["auto", "sketch"])
def test_sketch_for_auto_and_sketch(backend):
    generator, line = build_generator(BackendSettings(generator=backend))
    assert isinstance(generator, SketchGenerator)
    assert line == (
        "Generator: sketch (offline composition frames). Install weights with `imageforge models pull sd-turbo` "
        "or pass --generator diffusers --generator-model PATH for real images."
    )


def test_diffusers_without_weights_says_how_to_get_them():
    with pytest.raises(ValueError, match="imageforge models pull sd-turbo"):
        build_generator(BackendSettings(generator="diffusers"))
    with pytest.raises(ValueError, match="/nowhere"):
        build_generator(BackendSettings(generator="diffusers", generator_model="/nowhere/model"))


def test_openai_without_a_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build_generator(BackendSettings(generator="openai"))


def test_registered_backend_is_used(monkeypatch):
    made = []

    def factory(backends):
        made.append(backends.generator_model)
        return SketchGenerator(), "Generator: test"

    monkeypatch.setitem(registry.GENERATOR_FACTORIES, "diffusers", factory)
    _, line = build_generator(BackendSettings(generator="diffusers", generator_model="/models/tiny"))
    assert line == "Generator: test"
    assert made == ["/models/tiny"]
