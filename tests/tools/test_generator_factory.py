"""Choosing the generator from the backend settings."""

from __future__ import annotations

import pytest

from imageforge.tools.settings import GeneratorSettings
from imageforge.tools import factory
from imageforge.tools.factory import build_generator
from imageforge.tools.sketch import SketchGenerator


@pytest.mark.parametrize("backend", ["auto", "sketch"])
def test_sketch_for_auto_and_sketch(backend):
    generator, line = build_generator(GeneratorSettings(backend=backend))
    assert isinstance(generator, SketchGenerator)
    assert line == (
        "Generator: sketch (offline composition frames). Install weights with `imageforge models pull sd-turbo` "
        "or pass --generator diffusers --generator-model PATH for real images."
    )


def test_diffusers_without_weights_says_how_to_get_them():
    with pytest.raises(ValueError, match="imageforge models pull sd-turbo"):
        build_generator(GeneratorSettings(backend="diffusers"))
    with pytest.raises(ValueError, match="/nowhere"):
        build_generator(GeneratorSettings(backend="diffusers", model="/nowhere/model"))


def test_openai_without_a_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build_generator(GeneratorSettings(backend="openai"))


def test_registered_backend_is_used(monkeypatch):
    made = []

    def fake_factory(settings, device):
        made.append(settings.model)
        return SketchGenerator(), "Generator: test"

    monkeypatch.setitem(factory.GENERATOR_FACTORIES, "diffusers", fake_factory)
    _, line = build_generator(GeneratorSettings(backend="diffusers", model="/models/tiny"))
    assert line == "Generator: test"
    assert made == ["/models/tiny"]
