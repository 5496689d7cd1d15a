"""Seed 002's aspect-ratio presets as pixel sizes."""

from __future__ import annotations

import pytest

from imageforge.tools.sizes import ASPECT_RATIOS, choose_frame, native_frame, size_for


@pytest.mark.parametrize(
    ("preset", "resolution", "expected"),
    [
        ("square", 512, (512, 512)),
        ("16:9", 512, (512, 288)),  # 288 = 512 * 9 / 16 exactly
        ("4:5", 512, (408, 512)),  # 409.6 -> 408
        ("21:9", 512, (512, 216)),  # 219.4 -> 216
        ("16:9", 1024, (1024, 576)),
        ("4:5", 1024, (816, 1024)),  # 819.2 -> 816
        ("21:9", 1024, (1024, 440)),  # 438.9 -> 440
        ("square", 510, (512, 512)),  # the long edge is rounded too
    ],
)
def test_presets(preset, resolution, expected):
    size = size_for(preset, resolution)
    assert (size.width, size.height) == expected


def test_other_multiple():
    size = size_for("4:5", 1024, multiple=64)
    assert (size.width, size.height) == (832, 1024)  # 819.2 / 64 = 12.8 -> 13 * 64


@pytest.mark.parametrize("preset", list(ASPECT_RATIOS))
@pytest.mark.parametrize("resolution", [64, 333, 768, 2048])
def test_edges_are_multiples_and_ratio_is_kept(preset, resolution):
    size = size_for(preset, resolution)
    ratio_w, ratio_h = ASPECT_RATIOS[preset]
    assert size.width % 8 == 0 and size.height % 8 == 0
    assert max(size.width, size.height) == max(8, round(resolution / 8) * 8)
    # Rounding moves the short edge by at most half a multiple.
    ideal_short = resolution * min(ratio_w, ratio_h) / max(ratio_w, ratio_h)
    assert abs(min(size.width, size.height) - ideal_short) <= 4 + 1e-9
    assert (size.width >= size.height) == (ratio_w >= ratio_h)


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="'3:2'"):
        size_for("3:2", 512)


def test_bad_multiple_and_resolution():
    with pytest.raises(ValueError, match="multiple"):
        size_for("square", 512, multiple=0)
    with pytest.raises(ValueError, match="resolution"):
        size_for("square", 4, multiple=8)


# -- the model's native area (issue 11, point 4) ---------------------------------------------

NATIVE_EDGES = {"sd-1.5/sd-2.1-base/sd-turbo/sdxl-turbo": 512, "sd-2.1": 768, "sdxl/sd3/flux": 1024}


@pytest.mark.parametrize(
    ("preset", "edge", "multiple", "expected"),
    [
        ("square", 512, 8, (512, 512)),
        ("16:9", 512, 8, (680, 384)),  # not 512x288: 56 % of SD-Turbo's area
        ("4:5", 512, 8, (456, 576)),
        ("21:9", 512, 8, (784, 336)),  # not 512x216: 42 %
        ("16:9", 1024, 8, (1368, 768)),
        ("21:9", 1024, 8, (1568, 672)),
        ("16:9", 1024, 16, (1360, 768)),  # FLUX / SD3 pack 2x2 latent patches
        ("4:5", 1024, 16, (912, 1152)),
    ],
)
def test_native_frame(preset, edge, multiple, expected):
    size = native_frame(preset, edge, multiple)
    assert (size.width, size.height) == expected


@pytest.mark.parametrize("preset", list(ASPECT_RATIOS))
@pytest.mark.parametrize("edge", sorted(set(NATIVE_EDGES.values())))
@pytest.mark.parametrize("multiple", [8, 16])
def test_native_frame_keeps_the_area_at_every_ratio(preset, edge, multiple):
    size = native_frame(preset, edge, multiple)
    ratio_w, ratio_h = ASPECT_RATIOS[preset]
    assert size.width % multiple == 0 and size.height % multiple == 0
    assert abs(size.width * size.height / edge**2 - 1) < 0.02
    assert abs((size.width / size.height) / (ratio_w / ratio_h) - 1) < 0.03


class _NativeGenerator:
    name = "fake"
    model = "fake"
    native_edge = 1024
    native_family = "SDXL"
    size_multiple = 16


def test_choose_frame_uses_the_native_area_unless_the_resolution_is_given():
    frame, source = choose_frame(_NativeGenerator(), "16:9", None)
    assert (frame.width, frame.height) == (1360, 768)
    assert "native area of SDXL" in source
    # --resolution still overrides, rounded to the generator's multiple.
    frame, source = choose_frame(_NativeGenerator(), "16:9", 512)
    assert (frame.width, frame.height) == (512, 288)
    assert "set explicitly" in source
    # A generator without a native size (sketch, OpenAI) keeps the resolution setting.
    frame, _ = choose_frame(object(), "16:9", None)
    assert (frame.width, frame.height) == (512, 288)


def test_a_request_that_names_no_resolution_gets_the_native_area() -> None:
    """Neither the CLI nor the API fills in a resolution: unset reaches the frame choice as None."""
    from imageforge.api.models.generation import GenerationOptions
    from imageforge.graph.context import GenerationSettings

    assert GenerationSettings().resolution is None
    assert GenerationOptions().generation_settings().resolution is None
    frame, source = choose_frame(_NativeGenerator(), "16:9", GenerationSettings().resolution)
    assert "native area" in source and frame.width * frame.height > 512 * 288
