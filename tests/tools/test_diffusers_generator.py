"""The diffusers generator on a tiny random Stable Diffusion pipeline, loaded from disk the
way users load a real one (no network, no downloaded weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from tiny_models import device_for, save_tiny_sd_pipeline

from imageforge.tools.base import GenerationError, ImageGenerator
from imageforge.tools.devices import default_dtype, dtype_name
from imageforge.tools.diffusers_generator import (
    DiffusersGenerator,
    load_diffusers_generator,
    round_size,
    sampling_defaults,
)
from imageforge.tools.generation_cache import GenerationCache
from imageforge.tools.model_cache import model_cache
from imageforge.tools.schemas import ImageSize

SIZE = ImageSize(width=32, height=32)
PROMPT = "a red fox in the snow, golden hour"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny") / "tiny-sd")


@pytest.fixture
def device(request) -> str:
    """cpu; IMAGEFORGE_TEST_DEVICE for the tests marked gpu (benchmarks/gpu_check.sh)."""
    return device_for(request)


def _load(folder, **kwargs) -> DiffusersGenerator:
    options = {"device": "cpu", "steps": 2, "guidance_scale": 7.5, **kwargs}
    return load_diffusers_generator(str(folder), **options)


@pytest.fixture(scope="module")
def generator(tiny_folder) -> DiffusersGenerator:
    return _load(tiny_folder)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _generate(gen: DiffusersGenerator, seeds, *, references=(), negative="", size=SIZE):
    return gen.generate(PROMPT, negative_prompt=negative, seeds=list(seeds), references=list(references), size=size)


def _same_up_to_rounding(a: Image.Image, b: Image.Image, device: str = "cpu") -> bool:
    """Equal pixels, allowing one level in 255 on under 1% of values (batched float sums); in
    half precision on an accelerator, three levels on under 5%."""
    diff = np.abs(_pixels(a) - _pixels(b))
    levels, share = (1, 0.01) if device == "cpu" else (3, 0.05)
    return diff.max() <= levels and (diff > 0).mean() < share


@pytest.mark.gpu
def test_text_to_image_one_image_per_seed_with_metadata(tiny_folder, device):
    generator = _load(tiny_folder, device=device)
    assert isinstance(generator, ImageGenerator)
    output = _generate(generator, [11, 12, 13])
    assert [image.seed for image in output.images] == [11, 12, 13]
    assert all(image.image.size == (32, 32) for image in output.images)
    assert (output.backend, output.cache_hits, output.warnings) == ("diffusers", 0, [])
    meta = output.images[0].metadata
    assert meta["mode"] == "text2img"
    assert (meta["steps"], meta["guidance_scale"], meta["strength"]) == (2, 7.5, None)
    # float32 on the CPU, float16 on CUDA (bfloat16 only for the families that prefer it).
    assert (meta["device"], meta["dtype"]) == (device, dtype_name(default_dtype(device)))
    assert (meta["batch_size"], meta["batch_sizes"], meta["cache_hit"]) == (3, [3], False)
    assert meta["size"] == "32x32"


@pytest.mark.gpu
def test_same_seed_gives_same_image_alone_or_in_a_batch(tiny_folder, device):
    generator = _load(tiny_folder, device=device)
    alone = _generate(generator, [7]).images[0].image
    again = _generate(generator, [7]).images[0].image
    batch = _generate(generator, [3, 7, 11, 19]).images
    assert np.array_equal(_pixels(alone), _pixels(again))
    assert _same_up_to_rounding(alone, batch[1].image, device)
    # Different seeds are different pictures, not a rounding apart.
    assert np.abs(_pixels(batch[0].image) - _pixels(batch[1].image)).mean() > 10


@pytest.mark.gpu
def test_image_to_image_follows_the_reference(tiny_folder, device):
    generator = _load(tiny_folder, device=device)
    red = Image.new("RGB", (64, 48), (220, 30, 30))
    blue = Image.new("RGB", (64, 48), (30, 30, 220))
    from_red = _generate(generator, [5, 6], references=[red])
    from_blue = _generate(generator, [5], references=[blue]).images[0]
    text_only = _generate(generator, [5]).images[0]
    first = from_red.images[0]
    assert first.image.size == (32, 32)
    assert first.metadata["mode"] == "img2img"
    assert first.metadata["requested_strength"] == 0.6
    # The tiny pipeline's DDIM ("leading", offset 1) runs [501, 1] for 2 steps; 0.6 keeps the
    # last one, so the reference is re-noised to t=1 only: 2/1000.
    assert first.metadata["strength"] == 0.002
    assert first.metadata["references_used"] == 1
    # Strength 0.6 of 2 steps is 1.2 -> 1 step; at least one must remain, so steps >= 2.
    assert int(first.metadata["steps"] * 0.6) >= 1
    assert _pixels(first.image)[..., 0].mean() > _pixels(from_blue.image)[..., 0].mean()
    assert not np.array_equal(_pixels(first.image), _pixels(text_only.image))
    alone = _generate(generator, [6], references=[red]).images[0]
    assert _same_up_to_rounding(alone.image, from_red.images[1].image, device)


def test_negative_prompt_is_applied_with_guidance(generator):
    plain = _generate(generator, [2]).images[0]
    negative = _generate(generator, [2], negative="blurry, low quality").images[0]
    assert negative.metadata["negative_prompt_applied"] is True
    assert plain.metadata["negative_prompt_applied"] is False
    assert not np.array_equal(_pixels(plain.image), _pixels(negative.image))


def test_negative_prompt_is_not_applied_without_guidance(tiny_folder):
    turbo_like = _load(tiny_folder, guidance_scale=0.0)
    image = _generate(turbo_like, [2], negative="blurry").images[0]
    assert image.metadata["negative_prompt_applied"] is False


def test_size_is_rounded_to_what_the_model_needs(generator):
    output = _generate(generator, [1], size=ImageSize(width=35, height=45))
    # Stable Diffusion pipelines want both edges divisible by 8.
    assert output.images[0].image.size == (32, 48)
    assert output.images[0].metadata["requested_size"] == "35x45"
    assert any("rounded to 32x48" in warning for warning in output.warnings)


def _oom_above(limit: int, error: BaseException, monkeypatch) -> list[int]:
    """Make the text-to-image pipeline run out of memory for batches above ``limit``."""
    calls: list[int] = []
    original = StableDiffusionPipeline.__call__

    def flaky_call(self, *args, **kwargs):
        calls.append(kwargs["num_images_per_prompt"])
        if kwargs["num_images_per_prompt"] > limit:
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", flaky_call)
    return calls


@pytest.mark.gpu
def test_out_of_memory_halves_the_batch_and_records_it(tiny_folder, device, monkeypatch, caplog):
    expected = _generate(_load(tiny_folder, device=device), [21, 22, 23, 24]).images
    fresh = _load(tiny_folder, device=device)
    calls = _oom_above(1, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), monkeypatch)
    with caplog.at_level("WARNING", logger="imageforge.tools.diffusers_generator"):
        output = _generate(fresh, [21, 22, 23, 24])
    assert calls == [4, 2, 1, 1, 1, 1]
    assert len(output.warnings) == 2
    assert "batch of 4; retrying in batches of 2" in output.warnings[0]
    assert "batch of 2; retrying in batches of 1" in output.warnings[1]
    assert len([r for r in caplog.records if "Out of memory" in r.message]) == 2
    assert all(image.metadata["batch_sizes"] == [1, 1, 1, 1] for image in output.images)
    for made, reference in zip(output.images, expected, strict=True):
        assert made.seed == reference.seed
        assert _same_up_to_rounding(made.image, reference.image, device)
    # Four batches of one fitted, so the limit is back up one step (tools.batching): the next
    # call tries two, runs out of memory again and goes on in ones.
    calls.clear()
    _generate(fresh, [31, 32])
    assert calls == [2, 1, 1]


def test_runtime_out_of_memory_message_is_recognised(tiny_folder, monkeypatch):
    fresh = _load(tiny_folder)
    calls = _oom_above(2, RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"), monkeypatch)
    output = _generate(fresh, [1, 2, 3])
    assert calls == [3, 1, 1, 1]
    assert [image.seed for image in output.images] == [1, 2, 3]


def test_out_of_memory_with_one_image_is_a_generation_error(tiny_folder, monkeypatch):
    fresh = _load(tiny_folder)
    _oom_above(0, torch.OutOfMemoryError("CUDA out of memory"), monkeypatch)
    with pytest.raises(GenerationError, match="Out of memory on cpu generating one 32x32 image"):
        _generate(fresh, [1, 2])


def test_other_pipeline_errors_are_not_retried(tiny_folder, monkeypatch):
    fresh = _load(tiny_folder)
    calls = _oom_above(0, RuntimeError("mat1 and mat2 shapes cannot be multiplied"), monkeypatch)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        _generate(fresh, [1, 2])
    assert calls == [2]


def test_cache_hits_skip_generation(tiny_folder, tmp_path, monkeypatch):
    cached = _load(tiny_folder, cache=GenerationCache(tmp_path / "cache"))
    first = _generate(cached, [1, 2])
    assert first.cache_hits == 0
    calls = _oom_above(99, RuntimeError("unused"), monkeypatch)
    second = _generate(cached, [2, 1, 3])
    assert second.cache_hits == 2
    assert calls == [1]
    hits = {image.seed: image for image in second.images}
    assert hits[1].metadata["cache_hit"] is True and hits[2].metadata["cache_hit"] is True
    assert hits[3].metadata["cache_hit"] is False
    assert np.array_equal(_pixels(hits[1].image), _pixels(first.images[0].image))
    # A different prompt or a reference is a miss.
    other_prompt = cached.generate("another prompt", negative_prompt="", seeds=[1], references=[], size=SIZE)
    with_reference = _generate(cached, [1], references=[Image.new("RGB", (32, 32), "white")])
    assert other_prompt.cache_hits == 0 and with_reference.cache_hits == 0


def test_pipeline_is_loaded_once_per_process(tiny_folder, generator):
    again = _load(tiny_folder)
    assert again.text2img is generator.text2img
    keys = [model.key for model in model_cache.loaded() if model.kind == "generator"]
    assert sum(str(tiny_folder) in key for key in keys) == 1


def test_invalid_inputs_are_rejected(generator):
    with pytest.raises(ValueError, match="`seeds`"):
        _generate(generator, [])
    with pytest.raises(ValueError, match="`prompt`"):
        generator.generate(" ", negative_prompt="", seeds=[1], references=[], size=SIZE)
    with pytest.raises(ValueError, match="`img2img_strength`"):
        load_diffusers_generator("unused", device="cpu", img2img_strength=0)


def test_a_model_not_on_disk_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match="imageforge models pull"):
        load_diffusers_generator("stabilityai/sd-turbo", device="cpu")


def test_cpu_offload_needs_a_gpu(tiny_folder):
    with pytest.raises(ValueError, match="`cpu_offload` needs a CUDA device"):
        _load(tiny_folder, device="cpu", cpu_offload=True)


@pytest.mark.parametrize(
    ("model", "pipeline_class", "steps", "guidance"),
    [
        ("stabilityai/sd-turbo", "StableDiffusionPipeline", 1, 0.0),
        ("stabilityai/sdxl-turbo", "StableDiffusionXLPipeline", 1, 0.0),
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "StableDiffusionPipeline", 25, 7.5),
        ("stabilityai/stable-diffusion-xl-base-1.0", "StableDiffusionXLPipeline", 30, 7.0),
        ("black-forest-labs/FLUX.1-schnell", "FluxPipeline", 4, 0.0),
        ("black-forest-labs/FLUX.1-dev", "FluxPipeline", 28, 3.5),
    ],
)
def test_family_defaults(model, pipeline_class, steps, guidance):
    defaults = sampling_defaults(model, pipeline_class)
    assert (defaults.steps, defaults.guidance_scale) == (steps, guidance)


def test_round_size():
    assert round_size(ImageSize(width=512, height=288), 8) == ImageSize(width=512, height=288)
    assert round_size(ImageSize(width=500, height=283), 8) == ImageSize(width=504, height=280)
    assert round_size(ImageSize(width=20, height=20), 64) == ImageSize(width=64, height=64)
    with pytest.raises(ValueError, match="`multiple`"):
        round_size(SIZE, 0)


def test_ip_adapter_conditions_on_the_reference(tiny_folder, generator, tmp_path):
    from diffusers import UNet2DConditionModel
    from tiny_models import save_tiny_ip_adapter

    unet = UNet2DConditionModel.from_pretrained(tiny_folder / "unet")
    adapter = save_tiny_ip_adapter(tmp_path / "ip-adapter", unet)
    with_adapter = _load(tiny_folder, ip_adapter=f"{adapter}:models/ip-adapter.safetensors", ip_adapter_scale=1.0)
    # Without a reference the adapter runs at scale 0: the text-only image, unchanged.
    text_only = _generate(with_adapter, [1]).images[0]
    assert text_only.metadata["mode"] == "text2img"
    assert np.array_equal(_pixels(text_only.image), _pixels(_generate(generator, [1]).images[0].image))
    red = _generate(with_adapter, [1], references=[Image.new("RGB", (40, 40), "red")]).images[0]
    blue = _generate(with_adapter, [1], references=[Image.new("RGB", (40, 40), "blue")]).images[0]
    assert (red.metadata["mode"], red.metadata["ip_adapter_scale"]) == ("ip_adapter", 1.0)
    assert not np.array_equal(_pixels(red.image), _pixels(blue.image))
    with pytest.raises(ValueError, match="`ip_adapter` must look like"):
        _load(tiny_folder, ip_adapter="no-weights-file")
    with pytest.raises(FileNotFoundError, match="IP-Adapter weights"):
        _load(tiny_folder, ip_adapter=f"{adapter}:models/missing.safetensors")


class _OutOfMemoryPipeline:
    """A stand-in pipeline whose call allocates a tensor (its "activations") and runs out of
    memory for batches above ``limit``; ``alive`` are weak references to those tensors."""

    dtype = torch.float32
    vae_scale_factor = 8

    def __init__(self, limit: int, device: str = "cpu") -> None:
        self.limit = limit
        self.device = device
        self.alive: list = []

    def __call__(
        self, prompt, num_images_per_prompt, generator, num_inference_steps, guidance_scale, output_type, height, width
    ):
        import weakref

        activations = torch.ones(1 << 20, device=self.device)  # 4 MiB
        self.alive.append(weakref.ref(activations))
        if num_images_per_prompt > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return type("Output", (), {"images": [Image.new("RGB", (width, height))] * num_images_per_prompt})()


@pytest.mark.gpu
def test_out_of_memory_frees_after_the_handler_and_drops_the_frames(monkeypatch, device):
    from imageforge.tools import diffusers_generator

    pipeline = _OutOfMemoryPipeline(limit=1, device=device)
    generator = DiffusersGenerator(pipeline, model="fake", device=device, steps=1, guidance_scale=0.0)
    on_cuda = device.startswith("cuda")
    baseline = torch.cuda.memory_allocated(device) if on_cuda else 0
    held_at_free: list[bool] = []
    monkeypatch.setattr(
        diffusers_generator,
        "free_device_memory",
        lambda device: held_at_free.append(any(ref() is not None for ref in pipeline.alive)),
    )
    output = _generate(generator, [1, 2])
    assert [image.seed for image in output.images] == [1, 2]
    # When memory is freed, nothing holds the failed call's tensors any more.
    assert held_at_free == [False]

    pipeline.limit = 0
    pipeline.alive.clear()
    with pytest.raises(GenerationError) as raised:
        _generate(generator, [3])
    error = raised.value
    assert held_at_free == [False, False]
    assert "CUDA out of memory. Tried to allocate 2 GiB" in str(error)
    # The error that reaches the caller keeps the message, not the pipeline's frames.
    assert error.__cause__ is None and error.__context__ is None
    assert all(ref() is None for ref in pipeline.alive)
    if on_cuda:  # the allocator got the failed calls' blocks back
        assert torch.cuda.memory_allocated(device) == baseline


def test_image_to_image_shares_the_components_without_a_cast(tiny_folder, monkeypatch):
    """AutoPipelineForImage2Image.from_pipe (diffusers 0.42) ignores a dtype keyword and
    never casts: the loader relies on that, not on an ignored argument."""
    from diffusers import AutoPipelineForImage2Image

    received: list[dict] = []
    original = AutoPipelineForImage2Image.from_pipe.__func__

    def spy(cls, pipeline, **kwargs):
        received.append(dict(kwargs))
        return original(cls, pipeline, **kwargs)

    monkeypatch.setattr(AutoPipelineForImage2Image, "from_pipe", classmethod(spy))
    half = _load(tiny_folder, dtype=torch.float16)
    assert received == [{}]
    assert half.img2img.unet is half.text2img.unet and half.img2img.vae is half.text2img.vae
    assert half.img2img.unet.dtype == torch.float16 and half.text2img.text_encoder.dtype == torch.float16
    assert half.dtype == "float16"


#: diffusers 0.42's Euler scheduler trips a numpy 2 DeprecationWarning of its own.
EULER_NUMPY_WARNING = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


@pytest.mark.filterwarnings(EULER_NUMPY_WARNING)
@pytest.mark.parametrize(
    ("scheduler", "steps", "strength", "expected"),
    [
        # SD-Turbo / SDXL-Turbo: Euler, trailing spacing: [999, 499]; 0.6 keeps the last step.
        ("euler-trailing", 2, 0.6, 0.5),
        ("euler-trailing", 4, 0.6, 0.5),
        ("euler-trailing", 4, 1.0, 1.0),
        ("ddim-leading", 5, 0.6, 0.402),  # [801, 601, 401, 201, 1]: starts at 401
        # SD3: flow matching, no rounding of steps * strength; the sigma is the strength.
        ("flow-match", 4, 0.6, 0.8577),
    ],
)
def test_effective_strength_follows_the_scheduler(scheduler, steps, strength, expected):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

    from imageforge.tools.diffusers_generator import effective_img2img_strength

    made = {
        "euler-trailing": lambda: EulerDiscreteScheduler(timestep_spacing="trailing"),
        "ddim-leading": lambda: DDIMScheduler(steps_offset=1),
        "flow-match": lambda: FlowMatchEulerDiscreteScheduler(shift=3.0),
    }[scheduler]()
    assert effective_img2img_strength(made, steps, strength) == pytest.approx(expected, abs=1e-4)


@pytest.mark.filterwarnings(EULER_NUMPY_WARNING)
def test_recorded_strength_is_the_one_the_turbo_schedule_applies(tmp_path):
    """SD-Turbo's schedule on the tiny pipeline: 1 step asked, 2 run at 0.6, and the denoising
    starts at t=499, so the recorded strength is 0.5."""
    from diffusers import AutoPipelineForImage2Image, EulerDiscreteScheduler
    from tiny_models import build_tiny_sd_pipeline

    text2img = build_tiny_sd_pipeline(tmp_path)
    text2img.scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    text2img.set_progress_bar_config(disable=True)
    img2img = AutoPipelineForImage2Image.from_pipe(text2img)
    img2img.set_progress_bar_config(disable=True)
    generator = DiffusersGenerator(text2img, img2img, model="tiny-turbo", device="cpu", steps=1, guidance_scale=0.0)
    used: list[float] = []
    step = img2img.scheduler.step

    def spy(model_output, timestep, *args, **kwargs):
        used.append(float(timestep))
        return step(model_output, timestep, *args, **kwargs)

    img2img.scheduler.step = spy
    image = _generate(generator, [3], references=[Image.new("RGB", (32, 32), "red")]).images[0]
    assert used == [499.0]
    assert (image.metadata["steps"], image.metadata["requested_strength"], image.metadata["strength"]) == (2, 0.6, 0.5)


@pytest.mark.parametrize(
    ("model", "pipeline_class", "edge"),
    [
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "StableDiffusionPipeline", 512),
        ("stabilityai/stable-diffusion-2-1-base", "StableDiffusionPipeline", 512),
        ("stabilityai/stable-diffusion-2-1", "StableDiffusionPipeline", 768),
        ("stabilityai/sd-turbo", "StableDiffusionPipeline", 512),
        ("stabilityai/sdxl-turbo", "StableDiffusionXLPipeline", 512),
        ("stabilityai/stable-diffusion-xl-base-1.0", "StableDiffusionXLPipeline", 1024),
        ("stabilityai/stable-diffusion-3.5-medium", "StableDiffusion3Pipeline", 1024),
        ("black-forest-labs/FLUX.1-schnell", "FluxPipeline", 1024),
        ("/models/my-finetune", "StableDiffusionPipeline", None),
    ],
)
def test_native_size_per_family(model, pipeline_class, edge):
    from imageforge.tools.diffusers_generator import native_size

    found = native_size(model, pipeline_class)
    assert (found[0] if found else None) == edge


def test_the_tiny_pipeline_states_its_native_size(generator):
    """A model the family table does not know gets the size its pipeline makes by default:
    the tiny UNet's sample_size 16 times the tiny VAE's downscale 2."""
    from imageforge.tools.sizes import choose_frame

    assert (generator.native_edge, generator.native_family, generator.size_multiple) == (32, "the model's config", 8)
    frame, _ = choose_frame(generator, "16:9", None)
    assert (frame.width, frame.height) == (40, 24)


# -- IP-Adapter against the real checkpoints' layout (issue 11, point 2) ---------------------


@pytest.fixture(scope="module")
def tiny_unet(tiny_folder):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(tiny_folder / "unet")


def test_an_ip_adapter_for_another_family_is_refused_by_name(tiny_folder, tiny_unet, tmp_path):
    """ip-adapter_sd15 (768) on sd-turbo (1024) fails deep inside load_ip_adapter; here an
    adapter built for width 48 beside the tiny UNet's 32 is refused up front, naming both."""
    from tiny_models import save_tiny_ip_adapter

    from imageforge.tools.diffusers_generator import ip_adapter_width

    adapter = save_tiny_ip_adapter(tmp_path / "other-family", tiny_unet, cross_dim=48)
    assert ip_adapter_width(adapter / "models" / "ip-adapter.safetensors") == 48
    with pytest.raises(ValueError, match=r"built for cross-attention width 48 .* cross_attention_dim 32"):
        _load(tiny_folder, ip_adapter=f"{adapter}:models/ip-adapter.safetensors")


def test_the_image_encoder_may_live_in_another_folder(tiny_folder, tiny_unet, tmp_path):
    """The SDXL ViT-H adapters keep their weights in sdxl_models/ and need models/image_encoder."""
    from tiny_models import save_tiny_ip_adapter

    adapter = save_tiny_ip_adapter(
        tmp_path / "vit-h-layout", tiny_unet, weights_subfolder="sdxl_models", encoder_subfolder="models/image_encoder"
    )
    spec = f"{adapter}:sdxl_models/ip-adapter.safetensors"
    with pytest.raises(FileNotFoundError, match=r"sdxl_models/image_encoder.*ip_adapter_image_encoder"):
        _load(tiny_folder, ip_adapter=spec)
    red_reference = [Image.new("RGB", (40, 40), "red")]
    blue_reference = [Image.new("RGB", (40, 40), "blue")]
    for encoder in ("models/image_encoder", f"{adapter}:models/image_encoder", str(adapter / "models/image_encoder")):
        loaded = _load(tiny_folder, ip_adapter=spec, ip_adapter_scale=1.0, ip_adapter_image_encoder=encoder)
        red = _generate(loaded, [1], references=red_reference).images[0]
        blue = _generate(loaded, [1], references=blue_reference).images[0]
        assert red.metadata["mode"] == "ip_adapter"
        assert not np.array_equal(_pixels(red.image), _pixels(blue.image))


H94_LISTING = [
    "models/ip-adapter_sd15.safetensors",
    "models/ip-adapter-plus_sd15.safetensors",
    "models/image_encoder/config.json",
    "models/image_encoder/model.safetensors",
    "sdxl_models/ip-adapter_sdxl.safetensors",
    "sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
    "sdxl_models/image_encoder/config.json",
    "sdxl_models/image_encoder/model.safetensors",
]


def _files_fetched_by(hint: str, monkeypatch) -> set[str]:
    """Run each `hf download` command of ``hint`` through huggingface_hub's own CLI, with the
    download functions replaced by recorders, and return the files of H94_LISTING they fetch."""
    import shlex

    import huggingface_hub.cli.download as hf_download
    from click.testing import CliRunner
    from huggingface_hub.cli.hf import app
    from huggingface_hub.utils import filter_repo_objects

    fetched: set[str] = set()

    def snapshot(**kwargs):
        allow, ignore = kwargs.get("allow_patterns"), kwargs.get("ignore_patterns")
        fetched.update(filter_repo_objects(H94_LISTING, allow_patterns=allow, ignore_patterns=ignore))
        return "/nowhere"

    def one_file(**kwargs):
        fetched.add(kwargs["filename"])
        return "/nowhere"

    monkeypatch.setattr(hf_download, "snapshot_download", snapshot)
    monkeypatch.setattr(hf_download, "hf_hub_download", one_file)
    for command in hint.strip("`").split("&&"):
        words = shlex.split(command)
        assert words[:2] == ["hf", "download"], command
        result = CliRunner().invoke(app, words[1:])
        assert result.exit_code == 0, result.output
    return fetched


@pytest.mark.parametrize(
    ("spec", "encoder", "needed"),
    [
        (
            ("h94/IP-Adapter", "models", "ip-adapter_sd15.safetensors"),
            "models/image_encoder",
            {"models/ip-adapter_sd15.safetensors", "models/image_encoder/model.safetensors"},
        ),
        (
            ("h94/IP-Adapter", "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"),
            "models/image_encoder",
            {"sdxl_models/ip-adapter_sdxl_vit-h.safetensors", "models/image_encoder/model.safetensors"},
        ),
    ],
)
def test_the_download_hint_fetches_the_weights_and_the_image_encoder(spec, encoder, needed, monkeypatch):
    from imageforge.tools.diffusers_generator import ip_adapter_download_hint

    hint = ip_adapter_download_hint(*spec, encoder)
    fetched = _files_fetched_by(hint, monkeypatch)
    assert needed <= fetched, needed - fetched


def test_a_missing_ip_adapter_names_a_hint_that_fetches_both(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError) as raised:
        _load(tiny_folder, ip_adapter="h94/IP-Adapter:models/ip-adapter_sd15.safetensors")
    hint = str(raised.value).split("first: ", 1)[1].rstrip(".")
    assert {"models/ip-adapter_sd15.safetensors", "models/image_encoder/model.safetensors"} <= _files_fetched_by(
        hint, monkeypatch
    )


# -- the anchor reference (issue 11, point 3) ------------------------------------------------


@pytest.mark.gpu
def test_the_anchor_changes_image_to_image_without_an_adapter(tiny_folder, device):
    """Reference then anchor: the init image is the reference blended with the anchor."""
    generator = _load(tiny_folder, device=device)
    red, blue, green = (Image.new("RGB", (32, 32), colour) for colour in ("red", "blue", "green"))
    alone = _generate(generator, [4], references=[red]).images[0]
    with_blue = _generate(generator, [4], references=[red, blue]).images[0]
    with_green = _generate(generator, [4], references=[red, green]).images[0]
    assert (alone.metadata["anchor"], alone.metadata["references_used"]) == (None, 1)
    assert (with_blue.metadata["mode"], with_blue.metadata["anchor"]) == ("img2img", "init_blend")
    assert (with_blue.metadata["references_used"], with_blue.metadata["anchor_blend"]) == (2, 0.25)
    assert not np.array_equal(_pixels(alone.image), _pixels(with_blue.image))
    assert not np.array_equal(_pixels(with_blue.image), _pixels(with_green.image))


def test_the_anchor_conditions_the_ip_adapter_of_image_to_image(tiny_folder, tiny_unet, tmp_path):
    """With an adapter: image-to-image from the reference, the adapter on the anchor."""
    from tiny_models import save_tiny_ip_adapter

    adapter = save_tiny_ip_adapter(tmp_path / "ip-adapter", tiny_unet)
    loaded = _load(tiny_folder, ip_adapter=f"{adapter}:models/ip-adapter.safetensors", ip_adapter_scale=1.0)
    red, blue, green = (Image.new("RGB", (32, 32), colour) for colour in ("red", "blue", "green"))
    only_reference = _generate(loaded, [2], references=[red]).images[0]
    anchored_blue = _generate(loaded, [2], references=[red, blue]).images[0]
    anchored_green = _generate(loaded, [2], references=[red, green]).images[0]
    assert only_reference.metadata["mode"] == "ip_adapter"
    assert (anchored_blue.metadata["mode"], anchored_blue.metadata["anchor"]) == ("img2img", "ip_adapter")
    assert anchored_blue.metadata["ip_adapter_scale"] == 1.0 and anchored_blue.metadata["references_used"] == 2
    assert not np.array_equal(_pixels(anchored_blue.image), _pixels(anchored_green.image))
