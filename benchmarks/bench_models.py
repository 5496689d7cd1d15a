"""Model benchmarks (issue 3), run by hand: `python benchmarks/bench_models.py [--device cuda]`.

(a) Scoring 8 images in one batched call vs one call per image, for each CLIP-based scorer
    (PickScore, CLIP-score, LAION aesthetic, CLIP embedding consistency). One call per image
    is what a scorer without batching would do: one vision pass per image and, for the
    prompt scorers, one text pass per image. Target: batched at least 2x faster at N=8.
(b) CLIP-score + aesthetic on shared image embeddings (one vision pass serves both, through
    the backbone's embedding cache) vs separately (each scorer embeds the images itself).
    Target: shared at least 1.6x faster.
(c) 4 variations generated in one batched pipeline call vs one call per seed, with the tiny
    Stable Diffusion pipeline of the tests. No target; the ratio is reported as measured.

Every model is built here from a config with random weights (the builders in tests/), saved
with ``save_pretrained`` and loaded back through the loaders users run, so the script needs
only the repository: no network, no downloaded weights. The CLIP is small but not trivial
(see ``CLIP_CONFIG``): a 224 px ViT with 16 px patches, large enough that per-call overhead
does not dominate a forward pass. Every timed run starts with empty embedding caches; the
figures are medians over ``--repeats`` runs after ``--warmup`` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for the hub

import torch
from tiny_clip import make_images, tiny_clip_text_config, tiny_clip_tokenizer
from tiny_models import save_tiny_sd_pipeline

from imageforge.scoring.aesthetic import (
    AestheticScorer,
    aesthetic_head_shapes,
    clip_family_scorers,
    load_aesthetic_head,
)
from imageforge.scoring.clip_backbone import ClipBackbone, ImageEmbeddingCache, load_clip_backbone
from imageforge.scoring.clipscore import ClipScoreScorer
from imageforge.scoring.embedding_consistency import load_embedding_consistency_scorer
from imageforge.scoring.pickscore import PickScoreScorer
from imageforge.tools.diffusers_generator import load_diffusers_generator
from imageforge.tools.model_cache import ModelCache
from imageforge.tools.schemas import ImageSize

PROMPT = (
    "Barista grinds fresh beans at dawn, medium close-up, eye level, 50mm lens at f/2.8, "
    "soft window light from the left, warm 3200K, espresso brown and cream palette"
)
#: The benchmark CLIP: a ViT-B/16 vision tower at half width and half depth and a small text
#: tower (about 15M parameters in all; ViT-L/14 has 428M). ``--patch-size 32`` makes it
#: ViT-B/32-shaped: 50 image tokens instead of 197 (ViT-L/14 and ViT-H/14 have 257).
CLIP_CONFIG = {
    "image_size": 224,
    "patch_size": 16,
    "vision_hidden": 384,
    "vision_layers": 6,
    "vision_heads": 6,
    "vision_mlp": 1536,
    "text_hidden": 256,
    "text_layers": 4,
    "text_mlp": 1024,
    "projection_dim": 512,
}


def save_bench_clip(folder: Path, config: dict[str, int]) -> Path:
    """A CLIP with random weights and its processor, written with save_pretrained."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
        CLIPVisionConfig,
    )

    c = config
    tokenizer = tiny_clip_tokenizer(folder / "_tokenizer_src")
    text = tiny_clip_text_config(tokenizer, hidden_size=c["text_hidden"], projection_dim=c["projection_dim"])
    text.num_hidden_layers, text.intermediate_size = c["text_layers"], c["text_mlp"]
    vision = CLIPVisionConfig(
        hidden_size=c["vision_hidden"],
        intermediate_size=c["vision_mlp"],
        num_hidden_layers=c["vision_layers"],
        num_attention_heads=c["vision_heads"],
        image_size=c["image_size"],
        patch_size=c["patch_size"],
        projection_dim=c["projection_dim"],
    )
    config = CLIPConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=c["projection_dim"],
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    size = c["image_size"]
    CLIPProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tokenizer,
    ).save_pretrained(folder)
    return folder


def save_bench_head(path: Path, embed_dim: int) -> Path:
    """An aesthetic head with the published key names and shapes for ``embed_dim``."""
    generator = torch.Generator().manual_seed(0)
    state = {
        key: torch.randn(shape, generator=generator) * 0.05 for key, shape in aesthetic_head_shapes(embed_dim).items()
    }
    torch.save(state, path)
    return path


# -- timing ----------------------------------------------------------------------------------


def paired_medians(
    baseline: Callable[[], object],
    optimised: Callable[[], object],
    *,
    reset: Callable[[], None],
    args: argparse.Namespace,
) -> tuple[float, float]:
    """Median wall times of ``baseline`` and ``optimised``, each run after ``reset``
    (untimed). The two alternate within every repeat, in alternating order, so that load
    from other processes on a shared machine falls on both alike."""
    cuda = args.device.startswith("cuda")

    def timed(run: Callable[[], object]) -> float:
        reset()
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    times: dict[int, list[float]] = {0: [], 1: []}
    runs = (baseline, optimised)
    for index in range(args.warmup + args.repeats):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            elapsed = timed(runs[which])
            if index >= args.warmup:
                times[which].append(elapsed)
    return statistics.median(times[0]), statistics.median(times[1])


@dataclasses.dataclass
class Row:
    benchmark: str
    baseline: str
    optimised: str
    baseline_s: float
    optimised_s: float
    target: float | None

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.optimised_s

    def markdown(self) -> str:
        if self.target is None:
            verdict = "(no target)"
        else:
            verdict = f">= {self.target:g}x: {'met' if self.ratio >= self.target else 'MISSED'}"
        return (
            f"| {self.benchmark} | {self.baseline} | {self.optimised} | "
            f"{self.baseline_s * 1000:.1f} | {self.optimised_s * 1000:.1f} | "
            f"{self.ratio:.2f}x | {verdict} |"
        )


# -- the three benchmarks --------------------------------------------------------------------


def batched_vs_single(
    backbone: ClipBackbone, head_path: Path, clip_folder: Path, models: ModelCache, args
) -> list[Row]:
    """(a) N images in one call vs N calls of one image, per CLIP-based scorer."""
    images = make_images(args.images, size=256, seed=1)
    reference = make_images(1, size=256, seed=2)[0]
    head = load_aesthetic_head(head_path, embed_dim=backbone.embed_dim)
    clip_score, aesthetic = clip_family_scorers(backbone, head, batch_size=args.images)
    pickscore = PickScoreScorer(backbone=backbone, batch_size=args.images)
    consistency = load_embedding_consistency_scorer(
        model=str(clip_folder),
        kind="clip",
        device=args.device,
        batch_size=args.images,
        models=models,
    )
    assert consistency.embedder is backbone  # one model in memory, as in a real run
    # Consistency embeds the reference with the variations: N + 1 images, so at the default
    # batch size of N the batched call makes two passes, as the scorer would in a run.

    scorers: dict[str, Callable[[list], object]] = {
        "pickscore": lambda batch: pickscore.score(batch, PROMPT),
        "clip-score": lambda batch: clip_score.score(batch, PROMPT),
        "laion-aesthetic": lambda batch: aesthetic.score(batch, PROMPT),
        "clip-consistency": lambda batch: consistency.score(batch, [reference]),
    }
    rows = []
    for name, score in scorers.items():
        one_by_one, batched = paired_medians(
            lambda score=score: [score([image]) for image in images],
            lambda score=score: score(images),
            reset=backbone.cache.clear,
            args=args,
        )
        rows.append(
            Row(
                f"(a) {name}, N={len(images)}",
                f"{len(images)} calls of 1",
                "1 batched call",
                one_by_one,
                batched,
                2.0,
            )
        )
    return rows


def shared_vs_separate(backbone: ClipBackbone, head_path: Path, args) -> Row:
    """(b) CLIP-score + aesthetic: one vision pass for both vs one each."""
    images = make_images(args.images, size=256, seed=3)
    head = load_aesthetic_head(head_path, embed_dim=backbone.embed_dim)
    shared_clip, shared_aesthetic = clip_family_scorers(backbone, head, batch_size=args.images)
    # The same weights behind a second cache: each scorer embeds the images itself.
    own = dataclasses.replace(backbone, cache=ImageEmbeddingCache())
    separate_clip = ClipScoreScorer(backbone=backbone, batch_size=args.images)
    separate_aesthetic = AestheticScorer(backbone=own, head=head, batch_size=args.images)

    def reset() -> None:
        backbone.cache.clear()
        own.cache.clear()

    def both(clip_scorer, aesthetic_scorer) -> None:
        clip_scorer.score(images, PROMPT)
        aesthetic_scorer.score(images, PROMPT)

    separate, shared = paired_medians(
        lambda: both(separate_clip, separate_aesthetic),
        lambda: both(shared_clip, shared_aesthetic),
        reset=reset,
        args=args,
    )
    return Row(
        f"(b) clip-score + aesthetic, N={len(images)}",
        "separate vision passes",
        "shared embeddings",
        separate,
        shared,
        1.6,
    )


def generation_batched_vs_sequential(sd_folder: Path, args) -> tuple[Row, int]:
    """(c) N variations in one pipeline call vs one call per seed; also the largest pixel
    difference between an image made in the batch and the same seed made alone."""
    import numpy as np

    generator = load_diffusers_generator(str(sd_folder), device=args.device, steps=args.steps, guidance_scale=7.5)
    seeds = list(range(1, args.variations + 1))
    size = ImageSize(width=args.size, height=args.size)

    def make(batch: list[int]):
        return generator.generate(PROMPT, negative_prompt="blurry", seeds=batch, references=[], size=size)

    sequential, batched = paired_medians(
        lambda: [make([seed]) for seed in seeds], lambda: make(seeds), reset=lambda: None, args=args
    )
    together = make(seeds).images
    alone = [make([seed]).images[0] for seed in seeds]
    drift = max(
        int(np.abs(np.asarray(a.image, np.int16) - np.asarray(b.image, np.int16)).max())
        for a, b in zip(together, alone, strict=True)
    )
    row = Row(
        f"(c) tiny SD, {args.variations} variations {size}, {args.steps} steps",
        f"{args.variations} calls of 1",
        "1 batched call",
        sequential,
        batched,
        None,
    )
    return row, drift


# -- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own).")
    parser.add_argument("--repeats", type=int, default=7, help="Timed runs per figure.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed runs before them.")
    parser.add_argument("--patch-size", type=int, default=16, help="CLIP patch size: 16 (197 tokens) or 32 (50).")
    parser.add_argument("--images", type=int, default=8, help="Images scored, (a) and (b).")
    parser.add_argument("--variations", type=int, default=4, help="Variations generated, (c).")
    parser.add_argument("--size", type=int, default=32, help="Generated edge in pixels, (c).")
    parser.add_argument("--steps", type=int, default=4, help="Denoising steps, (c).")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device!r}: CUDA is not available on this machine.")
    if 224 % args.patch_size:
        parser.error(f"--patch-size must divide 224, got {args.patch_size}.")
    for name in ("threads", "repeats", "images", "variations", "size", "steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, got {value}.")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}.")
    return args


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))}, fp16)"
    return f"cpu ({torch.get_num_threads()} threads, fp32)"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    models = ModelCache()
    with tempfile.TemporaryDirectory(prefix="imageforge-bench-") as folder:
        work = Path(folder)
        config = {**CLIP_CONFIG, "patch_size": args.patch_size}
        clip_folder = save_bench_clip(work / "clip", config)
        backbone = load_clip_backbone(str(clip_folder), device=args.device, models=models)
        head_path = save_bench_head(work / "head.pth", backbone.embed_dim)
        sd_folder = save_tiny_sd_pipeline(work / "sd")

        rows = batched_vs_single(backbone, head_path, clip_folder, models, args)
        rows.append(shared_vs_separate(backbone, head_path, args))
        generation, drift = generation_batched_vs_sequential(sd_folder, args)
        rows.append(generation)
        parameters = sum(p.numel() for p in backbone.model.parameters())

    c = config
    print(f"### bench_models: {describe_device(args.device)}, torch {torch.__version__}")
    print()
    print(
        f"CLIP: ViT {c['image_size']} px / patch {c['patch_size']}, hidden {c['vision_hidden']}, "
        f"{c['vision_layers']} layers, {c['vision_heads']} heads, MLP {c['vision_mlp']}; text hidden "
        f"{c['text_hidden']}, {c['text_layers']} layers, 77 tokens; projection "
        f"{c['projection_dim']} ({parameters / 1e6:.1f}M parameters, random weights). Images "
        f"256x256, scorer batch size {args.images}. Tiny SD: the tests' pipeline (UNet "
        f"channels 4/8), guidance 7.5. Median of {args.repeats} runs after {args.warmup} "
        "warm-up runs; caches emptied before each run."
    )
    print()
    print("| Benchmark | Baseline | Optimised | Baseline (ms) | Optimised (ms) | Ratio | Target |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.markdown())
    print()
    print(f"(c) largest pixel difference between a seed made in the batch and made alone: {drift}/255.")


if __name__ == "__main__":
    main()
