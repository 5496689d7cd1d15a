"""Scorers see the whole frame (issue 11, point 7): wide images are padded to a square
before the CLIP/DINOv2/BLIP processors, so the centre crop cuts nothing away and BLIP's
resize does not squash."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imageforge.scoring.clip_backbone import load_clip_backbone
from imageforge.scoring.frames import CLIP_MEAN_RGB, padding_colour, whole_frame, whole_frames
from imageforge.scoring.vqascore import VQAScorer, load_vqa_model
from imageforge.tools.model_cache import ModelCache
from tests.tiny_clip import save_tiny_blip2

PROMPT = "a lighthouse on the left, a boat on the right"


def _wide(edges: tuple[int, int, int], *, width: int = 128, height: int = 72, margin: int = 16) -> Image.Image:
    """A 16:9 frame: the same textured middle, and left/right bands of ``margin`` px coloured ``edges``."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    pixels[:, :margin] = edges
    pixels[:, width - margin :] = edges
    return Image.fromarray(pixels)


def test_whole_frame_pads_the_short_side_centred():
    wide = Image.new("RGB", (160, 90), (200, 10, 10))
    square = whole_frame(wide, fill=(1, 2, 3))
    assert square.size == (160, 160)
    pixels = np.asarray(square)
    assert tuple(pixels[0, 0]) == (1, 2, 3) and tuple(pixels[159, 80]) == (1, 2, 3)
    assert tuple(pixels[35, 0]) == (200, 10, 10) and tuple(pixels[124, 159]) == (200, 10, 10)
    tall = whole_frame(Image.new("L", (40, 50)))
    assert tall.size == (50, 50) and tall.mode == "RGB"
    already = Image.new("RGB", (32, 32), "blue")
    assert np.array_equal(np.asarray(whole_frame(already)), np.asarray(already))


def test_padding_colour_is_the_processors_mean():
    class Processor:
        image_mean = (0.5, 0.25, 0.0)

    class Combined:
        image_processor = Processor()

    assert padding_colour(Processor()) == (128, 64, 0)
    assert padding_colour(Combined()) == (128, 64, 0)
    assert padding_colour(object()) == CLIP_MEAN_RGB
    assert [im.size for im in whole_frames([Image.new("RGB", (20, 10))], Processor())] == [(20, 20)]


@pytest.mark.gpu
def test_the_edges_of_a_wide_frame_change_the_clip_embedding(clip_dir, device):
    """With CLIP's resize-and-centre-crop, a 16:9 frame's outer bands never reach the model:
    two frames that differ only there embed identically. Padded to a square, they do not."""
    backbone = load_clip_backbone(str(clip_dir), device=device, models=ModelCache())
    red, blue = _wide((230, 20, 20)), _wide((20, 20, 230))
    embeddings = backbone.image_embeddings([red, blue])
    assert not torch.allclose(embeddings[0], embeddings[1], atol=1e-4)
    # The same as embedding the padded square by hand: padding is all that happens.
    fill = padding_colour(backbone.image_processor)
    by_hand = backbone.image_embeddings([whole_frame(red, fill)])
    torch.testing.assert_close(embeddings[:1], by_hand, **({} if device == "cpu" else {"atol": 1e-2, "rtol": 1e-2}))


@pytest.mark.gpu
def test_vqascore_sees_the_frame_at_its_proportions(tmp_path, device):
    """BLIP's processor resizes to a fixed square, squashing a wide frame: VQAScore on a 16:9
    frame must equal VQAScore on the same frame padded to a square."""
    vqa = load_vqa_model(str(save_tiny_blip2(tmp_path / "blip2", text_model="opt")), device=device, models=ModelCache())
    scorer = VQAScorer(vqa=vqa)
    wide = _wide((230, 20, 20))
    padded = whole_frame(wide, padding_colour(vqa.processor))
    tolerance = 1e-6 if device == "cpu" else 1e-3
    assert scorer.probabilities([wide], PROMPT) == pytest.approx(scorer.probabilities([padded], PROMPT), abs=tolerance)
    squashed = wide.resize((72, 72))
    assert scorer.probabilities([wide], PROMPT) != pytest.approx(scorer.probabilities([squashed], PROMPT), abs=1e-6)
