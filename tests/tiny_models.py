"""A tiny random-weight Stable Diffusion pipeline, saved to disk for the real generator loader.

Built like diffusers' own ``get_dummy_components()`` (UNet ``block_out_channels=(4, 8)``, a
two-layer CLIP text encoder, a two-block VAE, DDIM), seeded so that every build has the
same weights. Tests save it with ``save_pretrained`` and load it back through
``load_diffusers_generator``, the code users run. It makes 32x32 images in about a second
on one CPU core. The tokenizer and text encoder are the tiny CLIP's (``tiny_clip``): every
ASCII prompt tokenizes, and different prompts give different text embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path

from tiny_clip import tiny_clip_text_config, tiny_clip_tokenizer, tiny_vision_config

__all__ = [
    "TEST_DEVICE_VARIABLE",
    "build_tiny_sd_pipeline",
    "device_for",
    "save_tiny_ip_adapter",
    "save_tiny_sd_pipeline",
]

TEST_DEVICE_VARIABLE = "IMAGEFORGE_TEST_DEVICE"
"""Where the tests marked ``gpu`` run their tiny models: "cpu" (the default), "cuda", "cuda:1"."""


def device_for(request) -> str:
    """The device a test's tiny models run on: ``IMAGEFORGE_TEST_DEVICE`` (default "cpu") for a
    test marked ``gpu``, "cpu" for every other test, so that setting the variable moves only
    the tests meant for an accelerator (``IMAGEFORGE_TEST_DEVICE=cuda pytest -m gpu``). A
    requested CUDA device that torch cannot see skips the test rather than failing it."""
    import pytest
    import torch

    if request.node.get_closest_marker("gpu") is None:
        return "cpu"
    device = os.environ.get(TEST_DEVICE_VARIABLE, "cpu").strip() or "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"{TEST_DEVICE_VARIABLE}={device} but torch sees no CUDA device")
    return device


def build_tiny_sd_pipeline(workdir: Path, *, seed: int = 0):
    """A StableDiffusionPipeline with random tiny weights (``workdir`` holds the tokenizer files)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel

    tokenizer = tiny_clip_tokenizer(workdir / "_vocab")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(4, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=2,
        sample_size=32,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(tiny_clip_text_config(tokenizer))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_sd_pipeline(folder: Path, *, seed: int = 0) -> Path:
    """Save the tiny pipeline with ``save_pretrained`` (model_index.json plus one folder per part)."""
    folder = Path(folder)
    pipeline = build_tiny_sd_pipeline(folder.parent / f"{folder.name}_src", seed=seed)
    pipeline.save_pretrained(folder)
    return folder


def save_tiny_ip_adapter(
    folder: Path,
    unet,
    *,
    seed: int = 0,
    cross_dim: int | None = None,
    weights_subfolder: str = "models",
    encoder_subfolder: str = "models/image_encoder",
) -> Path:
    """An IP-Adapter for ``unet`` laid out like h94/IP-Adapter: ``models/ip-adapter.safetensors``
    (image projection to 4 tokens, to_k_ip/to_v_ip per cross-attention layer, numbered 1, 3,
    5, ... as diffusers' converter expects) and a tiny CLIP vision encoder in
    ``models/image_encoder``. Returns ``folder``; the spec string is
    ``f"{folder}:models/ip-adapter.safetensors"``.

    ``cross_dim`` builds it for another cross-attention width than the UNet's (an SD 1.5
    adapter beside SD-Turbo); ``weights_subfolder``/``encoder_subfolder`` lay it out like the
    SDXL ViT-H adapters (weights in ``sdxl_models/``, encoder in ``models/image_encoder``)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionModelWithProjection

    folder = Path(folder)
    cross_dim = cross_dim or unet.config.cross_attention_dim
    channels = list(unet.config.block_out_channels)
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(tiny_vision_config(projection_dim=32))
    encoder.save_pretrained(folder / encoder_subfolder)
    tensors = {
        "image_proj.proj.weight": torch.randn(4 * cross_dim, 32) * 0.1,
        "image_proj.proj.bias": torch.zeros(4 * cross_dim),
        "image_proj.norm.weight": torch.ones(cross_dim),
        "image_proj.norm.bias": torch.zeros(cross_dim),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross_dim) * 0.1
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross_dim) * 0.1
        key_id += 2
    (folder / weights_subfolder).mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / weights_subfolder / "ip-adapter.safetensors"))
    return folder
