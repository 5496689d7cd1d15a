"""The whole storyboard pipeline on real model code with tiny random weights (issue 3).

The generator is a tiny Stable Diffusion pipeline saved with ``save_pretrained`` and loaded
through ``load_diffusers_generator``; the scorers are PickScore (on its own tiny CLIP, as
PickScore's ViT-H is its own), CLIP-score, the LAION aesthetic head and CLIP embedding
consistency (sharing a second tiny CLIP backbone) and VQAScore on a tiny BLIP-2, each loaded
from disk through the loading code users run. The first test injects them through
``Context(services=...)``; the second lays the same tiny models out in a fake Hugging Face
cache under the real repository ids and lets ``auto`` find them, the path a user with
downloaded weights takes. No network, no downloaded weights.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import make_context
from PIL import Image
from tiny_clip import save_tiny_blip2, save_tiny_clip
from tiny_models import device_for, save_tiny_sd_pipeline

import imageforge.graph.services as services_module
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.graph.services import Services
from imageforge.scoring.aesthetic import (
    AESTHETIC_HEAD_FILENAME,
    aesthetic_head_shapes,
    clip_family_scorers,
    load_aesthetic_head,
)
from imageforge.scoring.clip_backbone import load_clip_backbone, pil_backend_kwargs
from imageforge.scoring.embedding_consistency import load_embedding_consistency_scorer
from imageforge.scoring.factory import ScorerSet
from imageforge.scoring.pickscore import PICKSCORE_MODEL, PICKSCORE_PROCESSOR, load_pickscore_scorer
from imageforge.scoring.schemas import BASE_WEIGHTS
from imageforge.scoring.settings import ScorerSettings
from imageforge.scoring.vqascore import DEFAULT_VQA_MODEL, load_vqa_scorer
from imageforge.tools.diffusers_generator import load_diffusers_generator
from imageforge.tools.model_cache import ModelCache, model_cache
from imageforge.tools.storage import load_image
from imageforge.traces import layout

SCENES = ["Barista grinds fresh beans at dawn", "Close-up of latte art in a ceramic cup"]
CONCEPT = "Artisan coffee that starts your morning right"
SLOTS = set(BASE_WEIGHTS)
#: GenerationSettings allows 64 px at the least; the tiny UNet is convolutional and makes
#: 64x64 images as readily as its native 32x32.
RESOLUTION = 64
#: Random tiny scorers give near-zero scores, so the thresholds are off: these tests check
#: the wiring (every scorer ran, references chained), not whether random weights pass.
SETTINGS = {
    "num_variations": 2,
    "max_enhancement_iterations": 2,
    "resolution": RESOLUTION,
    "seed": 11,
    "quality_threshold": 0.0,
    "consistency_threshold": 0.0,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def save_aesthetic_head(path: Path, embed_dim: int, *, seed: int = 0) -> Path:
    """A head with the published key names and shapes for ``embed_dim``-d embeddings, written
    as a .pth state dict like sac+logos+ava1-l14-linearMSE.pth. The last bias is 5, so ratings
    sit mid-scale (about 5 of 10) instead of near 0."""
    generator = torch.Generator().manual_seed(seed)
    state = {
        key: torch.randn(shape, generator=generator) * 0.05 for key, shape in aesthetic_head_shapes(embed_dim).items()
    }
    state["layers.7.bias"] = torch.full((1,), 5.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Every tiny model on disk, as ``save_pretrained`` writes it."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "sd": save_tiny_sd_pipeline(root / "sd"),
        "pick_clip": save_tiny_clip(root / "pick_clip", seed=1),
        "clip": save_tiny_clip(root / "clip", seed=0),
        # BLIP-2 with a Flan-T5-style language model: T5's relative positions take the long
        # enhanced prompts (hundreds of tokens with the character-level tokenizer), where the
        # tiny OPT's 128 positions would not.
        "blip2": save_tiny_blip2(root / "blip2", text_model="t5"),
        "head": save_aesthetic_head(root / "head" / AESTHETIC_HEAD_FILENAME, embed_dim=32),
    }


class RecordingGenerator:
    """Passes every call to the real generator and keeps what went in and came out, because
    the trace records the backend and model of each attempt but not per-image metadata such
    as the diffusers mode (text2img / img2img)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.calls: list[dict] = []

    def generate(self, prompt, *, negative_prompt, seeds, references, size):
        output = self.inner.generate(
            prompt, negative_prompt=negative_prompt, seeds=seeds, references=references, size=size
        )
        self.calls.append(
            {
                "references": [np.asarray(r.convert("RGB")) for r in references],
                "metadata": [item.metadata for item in output.images],
            }
        )
        return output


def _request(generation_id: str) -> StoryboardRequest:
    return StoryboardRequest(generation_id=generation_id, concept=CONCEPT, scenes=SCENES)


def _assert_trace_files(trace_root: str, generation_id: str, summary) -> None:
    folder = Path(trace_root) / generation_id
    assert (folder / layout.SUMMARY).is_file()
    for scene in summary.scenes:
        names = {p.name for p in (folder / f"scene_{scene.scene_number}").iterdir()}
        iterations = len(summary.enhancements[scene.scene_number - 1].iterations)
        assert 1 <= iterations <= 2
        expected = {
            layout.ORIGINAL_PROMPT,
            layout.FINAL_PROMPT,
            layout.PROMPT_SUMMARY,
            layout.QUALITY_SCORES,
            layout.SELECTED_BEST,
            layout.SCENE_RESULT,
            "image_1.png",
            "image_2.png",
        }
        expected |= {layout.agent_file(i, a) for i in range(1, iterations + 1) for a in (1, 2)}
        assert expected <= names, expected - names
        scores = json.loads((folder / f"scene_{scene.scene_number}" / layout.QUALITY_SCORES).read_text())
        assert scores["effective_weights"] == pytest.approx(BASE_WEIGHTS)
        with Image.open(folder / f"scene_{scene.scene_number}" / "image_1.png") as image:
            assert image.size == (RESOLUTION, RESOLUTION)


def _assert_every_slot_scored(summary) -> None:
    for scene in summary.scenes:
        assert scene.ensemble.missing == {}, scene.ensemble.missing
        assert scene.ensemble.effective_weights == pytest.approx(BASE_WEIGHTS)
        assert scene.ensemble.missing == {}
        assert not any("failed" in w for w in scene.warnings), scene.warnings
        for attempt in scene.attempts:
            assert len(attempt.variations) == 2
            for variation in attempt.variations:
                assert set(variation.components) == SLOTS
                assert all(0.0 <= v <= 100.0 for v in variation.components.values())


@pytest.fixture
def device(request) -> str:
    """cpu; IMAGEFORGE_TEST_DEVICE for the tests marked gpu (benchmarks/gpu_check.sh)."""
    return device_for(request)


@pytest.mark.gpu
async def test_storyboard_on_tiny_diffusers_and_tiny_scorers(tmp_path, tiny, device):
    # The backends, each loaded from disk by the function users call.
    generator = RecordingGenerator(
        load_diffusers_generator(str(tiny["sd"]), device=device, steps=2, guidance_scale=7.5)
    )
    models = ModelCache()
    pickscore = load_pickscore_scorer(
        model=str(tiny["pick_clip"]), processor=str(tiny["pick_clip"]), device=device, models=models
    )
    backbone = load_clip_backbone(str(tiny["clip"]), device=device, models=models)
    clip_score, aesthetic = clip_family_scorers(
        backbone, load_aesthetic_head(tiny["head"], embed_dim=backbone.embed_dim)
    )
    vqa = load_vqa_scorer(model=str(tiny["blip2"]), device=device, models=models)
    consistency = load_embedding_consistency_scorer(model=str(tiny["clip"]), device=device, models=models)
    # CLIP-score, aesthetic and consistency share one backbone (one vision pass per image).
    assert consistency.embedder is backbone
    services = Services(
        llm=None,
        generator=generator,
        scorers=ScorerSet(scorers=[pickscore, clip_score, vqa, aesthetic], consistency=consistency, missing={}),
        notes=["tiny diffusers and tiny scorers"],
    )
    context = dataclasses.replace(make_context(tmp_path, **SETTINGS), services=services)

    summary = await run_storyboard(_request("tiny"), context)

    assert summary.status == "completed", summary.error
    assert [s.scene_number for s in summary.scenes] == [1, 2]
    _assert_every_slot_scored(summary)
    assert {s.name for s in summary.scenes[0].ensemble.scorers} == {
        "pickscore",
        "clip-score",
        "vqascore",
        "laion-aesthetic",
    }
    # The aesthetic head's ratings sit mid-scale, so its component is not merely clipped to 0.
    assert all(20 < v.components["aesthetic"] < 80 for s in summary.scenes for v in s.attempts[0].variations)

    # Scene 1 is text-to-image; scene 2's first attempt is image-to-image on scene 1's winner.
    scene1, scene2 = summary.scenes
    assert scene1.attempts[0].reference is None
    first = scene2.attempts[0]
    assert first.reference is not None and first.reference.kind == "generated"
    assert first.reference.path == scene1.winner_path
    assert first.generator == "diffusers" and first.generator_model == str(tiny["sd"])
    assert len(generator.calls) == len(scene1.attempts) + len(scene2.attempts) == 2
    text_call, image_call = generator.calls
    assert text_call["references"] == []
    assert {m["mode"] for m in text_call["metadata"]} == {"text2img"}
    assert {m["mode"] for m in image_call["metadata"]} == {"img2img"}
    assert all(m["references_used"] == 1 and m["requested_strength"] == 0.6 for m in image_call["metadata"])
    winner_pixels = np.asarray(load_image(scene1.winner_path).convert("RGB"))
    np.testing.assert_array_equal(image_call["references"][0], winner_pixels)

    # Consistency came from the CLIP embedding scorer: recomputing it gives the same values.
    assert summary.backends["consistency"]["name"] == "clip-consistency"
    assert all(v.consistency is None for v in scene1.attempts[0].variations)
    for variation in first.variations:
        expected = consistency.score([load_image(variation.path)], [load_image(scene1.winner_path)])
        assert variation.consistency == pytest.approx(expected[0], abs=0.01)

    _assert_trace_files(context.trace_root, "tiny", summary)


# -- the same run through `auto`, with the tiny models in a fake Hugging Face cache -----------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_snapshot(cache: Path, repo_id: str, source: Path) -> Path:
    """``source`` copied into the cache layout: models--org--name/{refs/main, snapshots/<rev>}."""
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / COMMIT
    shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns("_*"))
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    return snapshot


def save_processor_only(source: Path, folder: Path) -> Path:
    """Tokenizer files and preprocessor_config.json without weights, laid out like the
    processor repository PickScore borrows (laion/CLIP-ViT-H-14-laion2B-s32B-b79K)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    AutoImageProcessor.from_pretrained(source, **pil_backend_kwargs()).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_hub(tmp_path, tiny, monkeypatch) -> Path:
    """HF_HOME holding every model `auto` looks for, under the real ids, with tiny weights:
    sd-turbo, PickScore (+ its processor repo), CLIP ViT-L/14 (768-d, as the published
    aesthetic head needs), the aesthetic head where `models pull aesthetic` puts it, and a
    vision-language model for VQAScore. The process-wide model cache and backend cache are emptied around the
    test, since both are keyed by model id, not by cache folder."""
    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    models = tmp_path / "models"
    fake_snapshot(cache, "stabilityai/sd-turbo", tiny["sd"])
    fake_snapshot(cache, PICKSCORE_MODEL, tiny["pick_clip"])
    fake_snapshot(cache, PICKSCORE_PROCESSOR, save_processor_only(tiny["pick_clip"], models / "proc"))
    fake_snapshot(
        cache,
        "openai/clip-vit-large-patch14",
        save_tiny_clip(models / "clip_l", projection_dim=768),
    )
    # The tiny BLIP-2 (Flan-T5) under InstructBLIP's id: the loader picks the family from the
    # config. A tiny InstructBLIP would not do: its character-level Q-Former tokens overflow
    # the Q-Former's 512 positions on the enhanced prompts.
    fake_snapshot(cache, DEFAULT_VQA_MODEL, tiny["blip2"])
    save_aesthetic_head(home / "imageforge" / AESTHETIC_HEAD_FILENAME, embed_dim=768)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(services_module, "_cache", {})
    model_cache.clear()
    yield home
    model_cache.clear()


async def test_auto_backends_find_the_tiny_models_in_the_cache(tmp_path, tiny_hub):
    backends = BackendSettings(
        llm="heuristic", generator="auto", scoring=ScorerSettings(scorers=("auto",)), device="cpu"
    )
    services = services_module.build_services(backends)
    generator_line, scorer_line = services.notes[1:]
    assert generator_line.startswith("Generator: diffusers stabilityai/sd-turbo on cpu")
    assert scorer_line.startswith("Scorers: pickscore for pickscore, clip-score for clip")
    assert "Left out" not in scorer_line and "stand-in" not in scorer_line
    assert services.scorers.missing == {}
    assert services.scorers.consistency.name == "clip-consistency"

    # No services in the context: the graph resolves them from `backends`, as the API does.
    context = Context(
        settings=GenerationSettings(**SETTINGS),
        backends=backends,
        trace_root=str(tmp_path / "traces"),
    )
    summary = await run_storyboard(_request("auto"), context)

    assert summary.status == "completed", summary.error
    _assert_every_slot_scored(summary)
    described = summary.backends
    assert described["generator"] == {"name": "diffusers", "model": "stabilityai/sd-turbo"}
    assert {s["slot"]: s["model"] for s in described["scorers"]} == {
        "pickscore": PICKSCORE_MODEL,
        "clip": "openai/clip-vit-large-patch14",
        "vqa": DEFAULT_VQA_MODEL,
        "aesthetic": f"openai/clip-vit-large-patch14 + {AESTHETIC_HEAD_FILENAME}",
    }
    assert described["consistency"]["name"] == "clip-consistency"
    assert described["missing_scorers"] == {}
    scene1, scene2 = summary.scenes
    assert scene2.attempts[0].reference.path == scene1.winner_path
    assert scene2.attempts[0].consistency is not None
    _assert_trace_files(context.trace_root, "auto", summary)


# -- frame size per model family (issue 11, point 4) ----------------------------------------


def _tiny_diffusers_context(tmp_path, tiny, **settings) -> Context:
    """The tiny diffusers generator with the offline scorers; ``settings`` as a request gives them."""
    base = {"num_variations": 1, "max_enhancement_iterations": 1, "seed": 3, "max_retries": 0}
    generator = load_diffusers_generator(str(tiny["sd"]), device="cpu", steps=2, guidance_scale=7.5)
    context = make_context(tmp_path)
    return dataclasses.replace(
        context,
        settings=GenerationSettings(**{**base, **settings}),
        services=dataclasses.replace(context.services, generator=generator),
    )


async def test_frame_has_the_models_native_area_unless_the_resolution_is_given(tmp_path, tiny):
    # The tiny model's native size is 32x32 (its config); 16:9 at that area is 40x24, where
    # a 512 long edge (the setting's default) would ask for 512x288.
    native = _tiny_diffusers_context(tmp_path / "native", tiny, aspect_ratio="16:9")
    summary = await run_storyboard(
        StoryboardRequest(generation_id="native", concept=CONCEPT, scenes=SCENES[:1]), native
    )
    assert summary.status == "completed", summary.error
    attempt = summary.scenes[0].attempts[0]
    assert attempt.size == "40x24"
    assert "native area" in attempt.size_source
    with Image.open(summary.scenes[0].winner_path) as image:
        assert image.size == (40, 24)
    scene_folder = Path(native.trace_root) / "native" / "scene_1"
    assert json.loads((scene_folder / layout.QUALITY_SCORES).read_text())["attempts"][0]["size"] == "40x24"
    assert json.loads((scene_folder / layout.SCENE_RESULT).read_text())["attempts"][0]["size"] == "40x24"

    # An explicit resolution overrides the native size: its long edge.
    given = _tiny_diffusers_context(tmp_path / "given", tiny, aspect_ratio="16:9", resolution=64)
    summary = await run_storyboard(StoryboardRequest(generation_id="given", concept=CONCEPT, scenes=SCENES[:1]), given)
    attempt = summary.scenes[0].attempts[0]
    assert attempt.size == "64x32" and "set explicitly" in attempt.size_source


# -- the anchor reference on a real backend (issue 11, point 3) -------------------------------


async def test_the_anchor_conditions_generation_and_validation_on_tiny_diffusers(tmp_path, tiny):
    """Scene 3 follows scene 2's winner and is anchored to scene 1's: the diffusers generator
    gets both (image-to-image from the reference blended with the anchor), consistency is
    measured against both and the lower one is validated, and quality_scores.json records
    both similarities."""
    from imageforge.graph.selection import combined_consistency, validate

    context = _tiny_diffusers_context(tmp_path, tiny, resolution=RESOLUTION, quality_threshold=0.0)
    generator = RecordingGenerator(context.services.generator)
    context = dataclasses.replace(context, services=dataclasses.replace(context.services, generator=generator))
    scenes = [*SCENES, "The cup steams on a windowsill at sunrise"]
    summary = await run_storyboard(StoryboardRequest(generation_id="anchor", concept=CONCEPT, scenes=scenes), context)
    assert summary.status == "completed", summary.error
    scene1, scene2, scene3 = summary.scenes
    # Scene 2 follows scene 1's winner, which is the anchor itself: one reference.
    assert scene2.attempts[0].anchor is None
    assert {m["references_used"] for m in generator.calls[1]["metadata"]} == {1}
    # Scene 3: the chosen reference (scene 2's winner) and the anchor (scene 1's).
    attempt = scene3.attempts[0]
    assert attempt.reference.path == scene2.winner_path
    assert attempt.anchor is not None and attempt.anchor.path == scene1.winner_path
    call = generator.calls[2]
    assert len(call["references"]) == 2
    assert {(m["mode"], m["anchor"], m["references_used"]) for m in call["metadata"]} == {("img2img", "init_blend", 2)}
    for variation in attempt.variations:
        assert variation.consistency_reference is not None and variation.consistency_anchor is not None
        assert variation.consistency == pytest.approx(
            combined_consistency(variation.consistency_reference, variation.consistency_anchor), abs=0.01
        )
    scores = json.loads((Path(context.trace_root) / "anchor" / "scene_3" / layout.QUALITY_SCORES).read_text())
    recorded = scores["attempts"][0]
    assert recorded["anchor"]["path"] == scene1.winner_path
    assert {"consistency_reference", "consistency_anchor"} <= set(recorded["variations"][0])
    # Validation sees the anchor: a threshold between the two similarities fails the attempt
    # (judged on the scene-to-scene similarity alone it would pass).
    best = attempt.best
    assert best.consistency_anchor < best.consistency_reference  # seeded: scene 3 is nearer scene 2
    threshold = (best.consistency_reference + best.consistency_anchor) / 2
    passed, _, failures = validate(best, quality_threshold=0.0, consistency_threshold=threshold)
    assert not passed and failures == ["Consistency validation failed"]
    reference_only = best.model_copy(update={"consistency": best.consistency_reference})
    assert validate(reference_only, quality_threshold=0.0, consistency_threshold=threshold)[0]
