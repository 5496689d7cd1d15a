"""The LAION aesthetic head: the published layout, its loader, and embeddings shared with
CLIP-score (one vision forward pass serves both)."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from imageforge.scoring.aesthetic import (
    AestheticHead,
    AestheticScorer,
    aesthetic_head_shapes,
    clip_family_scorers,
    default_aesthetic_head_path,
    load_aesthetic_head,
    load_aesthetic_scorer,
)
from imageforge.scoring.base import Scorer
from imageforge.scoring.clip_backbone import load_clip_backbone
from imageforge.scoring.clipscore import ClipScoreScorer
from imageforge.scoring.normalise import aesthetic_to_100
from imageforge.tools.model_cache import ModelCache, ModelNotAvailableError
from tests.tiny_clip import make_images

PROMPT = "a warm kitchen at dawn"


class PublishedMLP(nn.Module):
    """The layer layout of improved-aesthetic-predictor's simple_inference.py (no activations)."""

    def __init__(self, input_size: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x):
        return self.layers(x)


@pytest.fixture(scope="module")
def clip768_dir(tiny_clip):
    """A tiny CLIP whose projection is 768-d, the width of ViT-L/14's embeddings."""
    return tiny_clip(projection_dim=768)


@pytest.fixture(scope="module")
def published_head(tmp_path_factory):
    torch.manual_seed(0)
    mlp = PublishedMLP().eval()
    path = tmp_path_factory.mktemp("head") / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(mlp.state_dict(), path)
    return mlp, path


@pytest.fixture()
def backbone(clip768_dir):
    return load_clip_backbone(str(clip768_dir), device="cpu", models=ModelCache())


def test_head_has_the_published_keys_and_shapes():
    expected = {k: tuple(v.shape) for k, v in PublishedMLP().state_dict().items()}
    assert aesthetic_head_shapes(768) == expected
    assert {k: tuple(v.shape) for k, v in AestheticHead().state_dict().items()} == expected
    assert sorted({k.split(".")[1] for k in expected}) == ["0", "2", "4", "6", "7"]


def test_loader_accepts_the_published_state_dict(published_head):
    mlp, path = published_head
    head = load_aesthetic_head(path)
    x = torch.nn.functional.normalize(torch.randn(3, 768), dim=-1)
    with torch.no_grad():
        assert torch.allclose(head(x), mlp(x).squeeze(-1), atol=1e-6)
    assert not head.training


def test_loader_accepts_safetensors(published_head, tmp_path):
    from safetensors.torch import save_file

    mlp, _ = published_head
    path = tmp_path / "head.safetensors"
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(path))
    assert isinstance(load_aesthetic_head(path), AestheticHead)


def test_loader_rejects_a_wrong_shape_naming_key_and_shapes(tmp_path):
    state = PublishedMLP(input_size=512).state_dict()  # a ViT-B/32 head
    path = tmp_path / "vit-b.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"`layers\.0\.weight` has shape \(1024, 512\), expected \(1024, 768\)"):
        load_aesthetic_head(path)


def test_loader_rejects_a_different_layout(tmp_path):
    """An MLP with ReLUs between the layers shifts the last Linear to layers.8."""
    widths = [768, 1024, 128, 64, 16, 1]
    parts: list[nn.Module] = []
    for fan_in, fan_out in pairwise(widths):
        parts += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    relu_mlp = nn.Sequential(*parts[:-1])
    path = tmp_path / "relu.pth"
    torch.save({f"layers.{k}": v for k, v in relu_mlp.state_dict().items()}, path)
    with pytest.raises(ValueError, match=r"lacks `layers\.7\.weight` \(expected shape \(1, 16\)\)"):
        load_aesthetic_head(path)


def test_loader_rejects_extra_keys(published_head, tmp_path):
    mlp, _ = published_head
    state = dict(mlp.state_dict())
    state["layers.8.weight"] = torch.zeros(1, 1)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"unexpected keys \['layers\.8\.weight'\]"):
        load_aesthetic_head(path)


def test_loader_reports_a_missing_file(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_aesthetic_head(tmp_path / "nope.pth")


def test_scores_are_the_head_on_normalised_embeddings(backbone, published_head):
    mlp, path = published_head
    scorer = AestheticScorer(backbone=backbone, head=load_aesthetic_head(path))
    assert isinstance(scorer, Scorer) and scorer.slot == "aesthetic"
    images = make_images(4)
    embeddings = backbone.image_embeddings(images)
    with torch.no_grad():
        expected = mlp(embeddings).squeeze(-1).tolist()
    assert scorer.raw_scores(images) == pytest.approx(expected, abs=1e-5)
    assert scorer.score(images, PROMPT) == pytest.approx([aesthetic_to_100(r) for r in expected])
    assert scorer.score(images, "a different prompt") == scorer.score(images, PROMPT)


def test_clip_score_and_aesthetic_share_one_forward_pass(backbone, published_head):
    clip, aesthetic = clip_family_scorers(backbone, load_aesthetic_head(published_head[1]), batch_size=8)
    calls = []
    backbone.model.vision_model.register_forward_hook(lambda *a: calls.append(1))
    images = make_images(8, seed=4)
    clip_scores = clip.score(images, PROMPT)
    aesthetic_scores = aesthetic.score(images, PROMPT)
    assert len(calls) == 1
    assert len(clip_scores) == len(aesthetic_scores) == 8

    # The same numbers as each scorer computing on its own backbone.
    separate = load_clip_backbone(backbone.name, device="cpu", models=ModelCache())
    assert ClipScoreScorer(backbone=separate).score(images, PROMPT) == pytest.approx(clip_scores, abs=1e-4)
    separate.cache.clear()
    head = load_aesthetic_head(published_head[1])
    assert AestheticScorer(backbone=separate, head=head).score(images, PROMPT) == pytest.approx(
        aesthetic_scores, abs=1e-4
    )


def test_new_images_are_embedded_again(backbone, published_head):
    """The cache keys on image identity: fresh images (the next attempt) are not served stale rows."""
    _, aesthetic = clip_family_scorers(backbone, load_aesthetic_head(published_head[1]))
    calls = []
    backbone.model.vision_model.register_forward_hook(lambda *a: calls.append(1))
    first = aesthetic.raw_scores(make_images(2, seed=1))
    second = aesthetic.raw_scores(make_images(2, seed=2))
    assert len(calls) == 2
    assert first != pytest.approx(second)


def test_head_width_must_match_the_backbone(clip_dir):
    small = load_clip_backbone(str(clip_dir), device="cpu", models=ModelCache())
    with pytest.raises(ValueError, match="takes 768-d embeddings"):
        AestheticScorer(backbone=small, head=AestheticHead(768))


def test_load_aesthetic_scorer_through_the_registry(clip768_dir, published_head):
    models = ModelCache()
    scorer = load_aesthetic_scorer(
        head_path=published_head[1], clip_model=str(clip768_dir), device="cpu", models=models
    )
    assert len(scorer.score(make_images(2), PROMPT)) == 2
    assert sorted(m.kind for m in models.loaded()) == ["aesthetic", "clip"]


def test_missing_head_fails_before_loading_clip(tmp_path, clip768_dir):
    models = ModelCache()
    with pytest.raises(ModelNotAvailableError, match="imageforge models pull"):
        load_aesthetic_scorer(head_path=tmp_path / "missing.pth", clip_model=str(clip768_dir), models=models)
    assert models.loaded() == []


def test_default_head_path_is_under_hf_home(monkeypatch, tmp_path, clip768_dir, published_head):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    path = default_aesthetic_head_path()
    assert path == tmp_path / "imageforge" / "sac+logos+ava1-l14-linearMSE.pth"
    path.parent.mkdir()
    path.write_bytes(published_head[1].read_bytes())
    scorer = load_aesthetic_scorer(clip_model=str(clip768_dir), device="cpu", models=ModelCache())
    assert len(scorer.score(make_images(1), PROMPT)) == 1
