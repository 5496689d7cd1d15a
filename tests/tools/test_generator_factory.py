"""Choosing the generator from the backend settings."""

from __future__ import annotations

import pytest

from imageforge.tools import factory
from imageforge.tools.factory import build_generator
from imageforge.tools.settings import GeneratorSettings
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


def user_factory(settings, device):
    """A user-supplied GeneratorFactory, importable as ``test_generator_factory:user_factory``."""
    return SketchGenerator(), f"Generator: user factory ({settings.model}, {device})"


NOT_CALLABLE = 42


def test_an_import_path_names_a_user_supplied_factory():
    settings = GeneratorSettings(backend=f"{__name__}:user_factory", model="tiny")
    generator, line = build_generator(settings, "cpu")
    assert isinstance(generator, SketchGenerator)
    assert line == "Generator: user factory (tiny, cpu)"


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("no_such_module_here:build", "cannot import module 'no_such_module_here'"),
        (f"{__name__}:missing", "has no attribute 'missing'"),
        (f"{__name__}:NOT_CALLABLE", "is not callable"),
    ],
)
def test_a_bad_import_path_is_a_clear_error_naming_the_setting(backend, message):
    with pytest.raises(ValueError, match=r"generator\.backend") as caught:
        build_generator(GeneratorSettings(backend=backend))
    assert message in str(caught.value) and "IMAGEFORGE_GENERATOR__BACKEND" in str(caught.value)


@pytest.mark.parametrize("backend", ["nope", "module.only", ":build", "a b:c", "pkg:"])
def test_backend_is_a_name_or_an_import_path(backend):
    with pytest.raises(ValueError, match=r"generator\.backend"):
        GeneratorSettings(backend=backend)
