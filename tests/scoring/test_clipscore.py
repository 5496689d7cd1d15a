"""CLIP-score on a tiny random CLIP: parity with torchmetrics, batching, the backbone."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from imageforge.scoring.base import Scorer
from imageforge.scoring.clip_backbone import load_clip_backbone, pooled_embeddings
from imageforge.scoring.clipscore import ClipScoreScorer, clipscore_raw
from imageforge.scoring.normalise import clipscore_to_100
from imageforge.tools.model_cache import ModelCache, ModelNotAvailableError
from tests.tiny_clip import make_images

PROMPT = "a red cat on a sofa"


@pytest.fixture()
def backbone(clip_dir):
    return load_clip_backbone(str(clip_dir), device="cpu", models=ModelCache())


def _count_vision_passes(backbone) -> list[int]:
    calls: list[int] = []
    backbone.model.vision_model.register_forward_hook(lambda module, args, out: calls.append(1))
    return calls


class _PooledFeatures(torch.nn.Module):
    """torchmetrics 1.9 expects get_*_features to return tensors; transformers 5 returns
    output objects. This wrapper hands torchmetrics the pooled, projected tensors."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip
        self.config = clip.config

    def get_image_features(self, pixel_values):
        return pooled_embeddings(self.clip.get_image_features(pixel_values=pixel_values), "image")

    def get_text_features(self, input_ids, attention_mask=None):
        return pooled_embeddings(
            self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask), "text"
        )


def test_is_a_scorer_for_the_clip_slot(backbone):
    scorer = ClipScoreScorer(backbone=backbone)
    assert isinstance(scorer, Scorer)
    assert (scorer.slot, scorer.stand_in, scorer.model) == ("clip", False, backbone.name)


def test_equals_torchmetrics_clipscore_on_the_same_model(clip_dir, backbone):
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    def tiny_from_disk():
        model = CLIPModel.from_pretrained(str(clip_dir), local_files_only=True).eval()
        return _PooledFeatures(model), CLIPProcessor.from_pretrained(str(clip_dir), local_files_only=True)

    images = make_images(6, seed=3)
    ours = ClipScoreScorer(backbone=backbone).raw_scores(images, PROMPT)
    metric = CLIPScore(model_name_or_path=tiny_from_disk)
    theirs = []
    for image in images:
        metric.reset()
        chw = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()  # uint8, CHW
        metric.update(chw, PROMPT)
        theirs.append(float(metric.compute()))
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert any(v > 0 for v in ours), "every pair clipped to 0: the comparison would prove nothing"


def test_raw_is_100_times_clipped_cosine_and_score_is_the_band(backbone):
    images = make_images(5, seed=1)
    scorer = ClipScoreScorer(backbone=backbone)
    image_embeds = backbone.image_embeddings(images)
    text_embed = backbone.text_embeddings([PROMPT])[0]
    cos = torch.nn.functional.cosine_similarity(image_embeds, text_embed[None], dim=-1)
    assert scorer.raw_scores(images, PROMPT) == pytest.approx((100 * cos.clamp_min(0)).tolist(), abs=1e-4)
    assert scorer.score(images, PROMPT) == pytest.approx(
        [clipscore_to_100(r) for r in scorer.raw_scores(images, PROMPT)]
    )
    assert scorer.raw_scores(images, PROMPT) == pytest.approx(clipscore_raw(backbone.prompt_cosines(images, PROMPT)))
    assert torch.allclose(backbone.prompt_cosines(images, PROMPT), cos, atol=1e-5)
    assert clipscore_raw(torch.tensor([1.0, -1.0, 0.25])) == [100.0, 0.0, 25.0]


@pytest.mark.parametrize("batch_size, passes", [(8, 1), (4, 2), (3, 3)])
def test_one_forward_pass_per_batch_and_batching_does_not_change_scores(backbone, batch_size, passes):
    images = make_images(8, seed=2)
    calls = _count_vision_passes(backbone)
    batched = ClipScoreScorer(backbone=backbone, batch_size=batch_size).raw_scores(images, PROMPT)
    assert len(calls) == passes
    backbone.cache.clear()
    one_by_one = [ClipScoreScorer(backbone=backbone).raw_scores([im], PROMPT)[0] for im in images]
    assert batched == pytest.approx(one_by_one, abs=1e-4)


def test_embeddings_are_normalised_and_text_differs(backbone):
    emb = backbone.image_embeddings(make_images(3))
    assert emb.shape == (3, backbone.embed_dim)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    texts = backbone.text_embeddings(["a cat", "a dog on a beach"])
    assert not torch.allclose(texts[0], texts[1])


def test_long_prompts_are_truncated_to_77_tokens(backbone):
    long = "a cat " * 200
    assert backbone.max_text_length == 77
    a = backbone.text_embeddings([long])
    b = backbone.text_embeddings([long + " and a dog"])
    assert torch.allclose(a, b)
    assert len(ClipScoreScorer(backbone=backbone).score(make_images(1), long)) == 1


def test_empty_batch_and_bad_inputs(backbone):
    scorer = ClipScoreScorer(backbone=backbone)
    assert scorer.score([], PROMPT) == []
    with pytest.raises(TypeError, match="`prompt` must be a string"):
        scorer.score(make_images(1), None)
    with pytest.raises(TypeError, match=r"`images\[1\]` must be a PIL image"):
        scorer.score([make_images(1)[0], "not an image"], PROMPT)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        ClipScoreScorer(backbone=backbone, batch_size=0)
    with pytest.raises(TypeError, match="`texts` must be a list"):
        backbone.text_embeddings("a cat")


def test_pooled_embeddings_reads_every_output_shape():
    t = torch.ones(2, 3)
    assert pooled_embeddings(t, "image") is t
    assert pooled_embeddings(SimpleNamespace(pooler_output=t), "image") is t
    assert pooled_embeddings(SimpleNamespace(image_embeds=t, pooler_output=None), "image") is t
    assert pooled_embeddings(SimpleNamespace(text_embeds=t), "text") is t
    assert pooled_embeddings((torch.zeros(2, 5, 3), t), "text") is t
    with pytest.raises(TypeError, match="Cannot find image embeddings"):
        pooled_embeddings(SimpleNamespace(last_hidden_state=t), "image")


def test_loader_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotAvailableError, match="imageforge-tests/no-such-clip"):
        load_clip_backbone("imageforge-tests/no-such-clip", device="cpu", models=ModelCache())


def test_loaded_once_through_the_registry(clip_dir):
    models = ModelCache()
    first = load_clip_backbone(str(clip_dir), device="cpu", models=models)
    second = load_clip_backbone(str(clip_dir), device="cpu", models=models)
    assert first is second
    [info] = models.loaded()
    assert (info.kind, info.device) == ("clip", "cpu")
