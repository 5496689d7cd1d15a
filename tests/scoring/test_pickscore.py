"""PickScore follows its published formula, on a tiny random CLIP."""

from __future__ import annotations

import shutil

import pytest
import torch

from imageforge.scoring.base import Scorer
from imageforge.scoring.clip_backbone import load_clip_backbone
from imageforge.scoring.normalise import pickscore_to_100
from imageforge.scoring.pickscore import (
    PICKSCORE_MODEL,
    PICKSCORE_PROCESSOR,
    PickScoreScorer,
    load_pickscore_scorer,
    pickscore_raw,
)
from imageforge.tools.model_cache import ModelCache, ModelNotAvailableError
from tests.tiny_clip import make_images

PROMPT = "a cinematic photo of a coffee cup at sunrise"


@pytest.fixture(scope="module")
def clip_dir(tiny_clip):
    """PickScore's own tiny CLIP (seed 1), not the one CLIP-score's tests use."""
    return tiny_clip(seed=1)


@pytest.fixture(scope="module")
def split_dirs(tmp_path_factory, clip_dir):
    """PickScore's layout: a model folder without a processor, the processor in another."""
    root = tmp_path_factory.mktemp("pickscore")
    model_dir, processor_dir = root / "model", root / "processor"
    shutil.copytree(clip_dir, model_dir)
    shutil.copytree(clip_dir, processor_dir)
    for path in model_dir.iterdir():
        if path.name.startswith(("tokenizer", "processor", "preprocessor", "_")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (processor_dir / "model.safetensors").unlink()
    return model_dir, processor_dir


def test_raw_score_is_logit_scale_exp_times_cosine(clip_dir):
    from transformers import CLIPModel, CLIPProcessor

    images = make_images(4, seed=5)
    scorer = load_pickscore_scorer(model=str(clip_dir), processor=str(clip_dir), device="cpu", models=ModelCache())
    assert isinstance(scorer, Scorer) and scorer.slot == "pickscore" and not scorer.stand_in

    # By hand, as the PickScore README does it.
    model = CLIPModel.from_pretrained(str(clip_dir), local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(str(clip_dir), local_files_only=True)
    with torch.no_grad():
        image_inputs = processor(images=images, return_tensors="pt")
        text_inputs = processor(text=PROMPT, padding=True, truncation=True, max_length=77, return_tensors="pt")
        image_embs = model.get_image_features(**image_inputs)
        text_embs = model.get_text_features(**text_inputs)
        image_embs = getattr(image_embs, "pooler_output", image_embs)
        text_embs = getattr(text_embs, "pooler_output", text_embs)
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        expected = (model.logit_scale.exp() * (text_embs @ image_embs.T)[0]).tolist()

    scale = float(model.logit_scale.detach().exp())
    assert scale == pytest.approx(14.2857, abs=0.01)  # a random CLIP: exp(log(1/0.07)), not ~100
    assert scorer.backbone.logit_scale == pytest.approx(scale)
    raw = scorer.raw_scores(images, PROMPT)
    assert raw == pytest.approx(expected, abs=1e-4)
    assert all(abs(r) <= scale + 1e-4 for r in raw)
    assert scorer.score(images, PROMPT) == pytest.approx([pickscore_to_100(r) for r in raw])


def test_pure_formula():
    image = torch.tensor([[0.6, 0.8], [1.0, 0.0], [-0.5, 0.0]])
    text = torch.tensor([1.0, 0.0])
    cosines = image @ text
    assert pickscore_raw(cosines, 100.0) == pytest.approx([60.0, 100.0, -50.0])
    assert pickscore_raw(cosines, 14.3) == pytest.approx([8.58, 14.3, -7.15])


def test_processor_comes_from_its_own_repo(split_dirs):
    model_dir, processor_dir = split_dirs
    scorer = load_pickscore_scorer(
        model=str(model_dir), processor=str(processor_dir), device="cpu", models=ModelCache()
    )
    assert scorer.model == str(model_dir)
    assert len(scorer.score(make_images(2), PROMPT)) == 2


def test_texts_change_the_score(clip_dir):
    scorer = PickScoreScorer(backbone=load_clip_backbone(str(clip_dir), device="cpu", models=ModelCache()))
    images = make_images(3)
    assert scorer.raw_scores(images, "a red cat") != pytest.approx(scorer.raw_scores(images, "an empty blue room"))


@pytest.mark.gpu
def test_batches_of_four_take_two_passes_and_match_one_by_one(clip_dir, device):
    scorer = PickScoreScorer(
        backbone=load_clip_backbone(str(clip_dir), device=device, models=ModelCache()),
        batch_size=4,
    )
    calls = []
    hook = scorer.backbone.model.vision_model.register_forward_hook(lambda *a: calls.append(1))
    images = make_images(8, seed=9)
    batched = scorer.raw_scores(images, PROMPT)
    hook.remove()
    assert len(calls) == 2
    single = [scorer.raw_scores([im.copy()], PROMPT)[0] for im in images]
    # Half precision on an accelerator: batched and single sums round differently.
    assert batched == pytest.approx(single, abs=1e-4 if device == "cpu" else 5e-2)


def test_defaults_name_the_published_checkpoints_and_never_download(tmp_path, monkeypatch):
    assert PICKSCORE_MODEL == "yuvalkirstain/PickScore_v1"
    assert PICKSCORE_PROCESSOR == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    models = ModelCache()
    with pytest.raises(ModelNotAvailableError, match="PickScore_v1"):
        load_pickscore_scorer(device="cpu", models=models)
    assert models.loaded() == []
