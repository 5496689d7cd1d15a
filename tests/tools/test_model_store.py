"""The model catalogue against a fake Hugging Face cache (no network), and `imageforge models`."""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fake_hub import FakeHub
from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoSibling
from tiny_models import save_tiny_sd_pipeline
from typer.testing import CliRunner

from imageforge.api.cli.models import format_bytes, models_app
from imageforge.tools import model_store
from imageforge.tools.diffusers_generator import load_diffusers_generator
from imageforge.tools.schemas import ImageSize

SD_TURBO = "stabilityai/sd-turbo"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny") / "tiny-sd")


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache that every lookup in the test uses."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def online(monkeypatch):
    """Hub calls allowed, whatever the shell exported: offline mode is read at call time, and
    huggingface_hub's own flag (read at import) is switched off too."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def fake_snapshot(cache: Path, repo_id: str, source: Path) -> Path:
    """Lay ``source`` out as the hub cache does: content in blobs/, symlinks in snapshots/."""
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / COMMIT
    (repo_folder / "blobs").mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo_folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    (repo_folder / "refs").mkdir(exist_ok=True)
    (repo_folder / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    return snapshot


def test_nothing_is_available_in_an_empty_cache(hub):
    assert model_store.hub_cache_dir() == hub
    assert model_store.local_snapshot(SD_TURBO) is None
    assert not model_store.is_available("sd-turbo")
    assert not model_store.is_available(SD_TURBO)
    assert model_store.auto_generator_model() is None
    statuses = model_store.list_models()
    assert {s.name for s in statuses} >= {
        "sd-turbo",
        "sdxl-turbo",
        "sd15",
        "pickscore",
        "clip-l",
        "aesthetic",
        "vqa",
    }
    assert not any(s.present for s in statuses)
    assert all(s.size_bytes == 0 for s in statuses)


def test_a_cached_sd_turbo_snapshot_is_found_and_loaded(hub, tiny_folder, one_thread):
    snapshot = fake_snapshot(hub, SD_TURBO, tiny_folder)
    assert model_store.local_snapshot(SD_TURBO) == snapshot
    assert model_store.is_available("sd-turbo") and model_store.is_available(SD_TURBO)
    [status] = [s for s in model_store.list_models() if s.name == "sd-turbo"]
    blobs = sum(p.stat().st_size for p in (snapshot.parents[1] / "blobs").iterdir())
    assert status.present and status.size_bytes == blobs
    assert status.repo_ids == [SD_TURBO] and "generator" in status.used_by[0]
    assert model_store.auto_generator_model() == str(snapshot)
    # What the auto generator then runs: the snapshot, named and configured as sd-turbo.
    generator = load_diffusers_generator(model_store.auto_generator_model(), device="cpu")
    assert generator.model == SD_TURBO
    assert (generator.steps, generator.guidance_scale) == (1, 0.0)
    output = generator.generate(
        "a fox", negative_prompt="", seeds=[3], references=[], size=ImageSize(width=32, height=32)
    )
    assert output.images[0].image.size == (32, 32)


def test_an_incomplete_snapshot_is_not_available(hub, tiny_folder, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_folder, partial)
    for weights in (partial / "unet").glob("*.safetensors"):
        weights.unlink()
    fake_snapshot(hub, SD_TURBO, partial)
    assert model_store.local_snapshot(SD_TURBO) is not None
    assert not model_store.is_available("sd-turbo")
    assert model_store.auto_generator_model() is None


def test_hf_home_alone_locates_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert model_store.hub_cache_dir() == tmp_path / "home" / "hub"


def test_cache_variables_are_read_at_call_time_with_huggingface_hubs_precedence(tmp_path, monkeypatch):
    for variable in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_store.hf_home() == tmp_path / "xdg" / "huggingface"
    assert model_store.hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    assert model_store.hub_cache_dir() == tmp_path / "legacy"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert model_store.hub_cache_dir() == tmp_path / "hub"
    monkeypatch.setenv("HF_HOME", "~/elsewhere")
    assert model_store.hf_home() == Path("~/elsewhere").expanduser()


def test_local_folders_and_a_configured_model(hub, tiny_folder, tmp_path):
    assert model_store.is_available(str(tiny_folder))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not model_store.is_available(str(empty))
    assert model_store.auto_generator_model(str(tiny_folder)) == str(tiny_folder)
    assert model_store.auto_generator_model(str(tmp_path / "missing")) is None


def test_aesthetic_head_installed_beside_the_cache_counts(hub):
    head = hub.parent / "imageforge" / "sac+logos+ava1-l14-linearMSE.pth"
    head.parent.mkdir()
    head.write_bytes(b"x" * 1234)
    assert model_store.local_model_path("aesthetic") == head
    [status] = [s for s in model_store.list_models() if s.name == "aesthetic"]
    assert status.present and status.size_bytes == 1234


def test_weights_variant_detects_fp16_only_components(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    assert model_store.weights_variant(tmp_path) == "fp16"
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    assert model_store.weights_variant(tmp_path) is None


SD_TURBO_LISTING = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "sd_turbo.safetensors",
    "sd_turbo_fp16.safetensors",
    "image.png",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae_encoder/model.onnx",
]


def test_select_files_for_a_diffusers_repo():
    repo = model_store.ModelRepo(repo_id=SD_TURBO, kind="diffusers")
    assert model_store.select_files(repo, SD_TURBO_LISTING) == [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.fp16.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]


def test_select_files_for_transformers_processor_and_file_repos():
    listing = [
        "config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "merges.txt",
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "open_clip_pytorch_model.bin",
        "README.md",
    ]
    model = model_store.ModelRepo(repo_id="x/clip", kind="transformers")
    assert model_store.select_files(model, listing) == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
    ]
    bin_only = [name for name in listing if name != "model.safetensors"]
    assert "pytorch_model.bin" in model_store.select_files(model, bin_only)
    processor = model_store.ModelRepo(repo_id="x/clip", kind="processor")
    assert model_store.select_files(processor, listing) == [
        "config.json",
        "merges.txt",
        "preprocessor_config.json",
        "tokenizer.json",
    ]
    [aesthetic] = model_store.CATALOGUE["aesthetic"].repos
    assert model_store.select_files(aesthetic, ["README.md", aesthetic.filename]) == [aesthetic.filename]
    with pytest.raises(ValueError, match="has no file"):
        model_store.select_files(aesthetic, ["README.md"])


def test_pull_patterns_for_a_diffusers_repo():
    repo = model_store.ModelRepo(repo_id=SD_TURBO, kind="diffusers")
    allow, ignore = model_store.pull_patterns(repo, SD_TURBO_LISTING)
    assert allow == [
        "model_index.json",
        "*/*.json",
        "*/*.txt",
        "*/*.model",
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    assert {"*.ckpt", "*.onnx", "*.msgpack", "*.md", "*/*/*"} <= set(ignore)
    # A component without fp16 weights gets its plain safetensors.
    plain = [*SD_TURBO_LISTING, "safety_checker/config.json", "safety_checker/model.safetensors"]
    assert "safety_checker/model.safetensors" in model_store.pull_patterns(repo, plain)[0]


INSTRUCTBLIP_LISTING = [
    ".gitattributes",
    "README.md",
    "config.json",
    "generation_config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "pytorch_model-00001-of-00002.bin",
    "pytorch_model-00002-of-00002.bin",
    "preprocessor_config.json",
    "processor_config.json",
    "special_tokens_map.json",
    "spiece.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "qformer_tokenizer/special_tokens_map.json",
    "qformer_tokenizer/tokenizer.json",
    "qformer_tokenizer/tokenizer_config.json",
    "qformer_tokenizer/vocab.txt",
    "onnx/config.json",
    "onnx/model.onnx",
]


def test_pull_patterns_for_a_transformers_repo_with_a_tokenizer_subfolder():
    repo = model_store.ModelRepo(repo_id="Salesforce/instructblip-flan-t5-xl", kind="transformers")
    allow, ignore = model_store.pull_patterns(repo, INSTRUCTBLIP_LISTING)
    assert allow == [
        "*.json",
        "*.txt",
        "*.model",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert "onnx/*" in ignore and not any(pattern.startswith("qformer_tokenizer") for pattern in ignore)
    assert model_store.select_files(repo, INSTRUCTBLIP_LISTING) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "preprocessor_config.json",
        "processor_config.json",
        "qformer_tokenizer/special_tokens_map.json",
        "qformer_tokenizer/tokenizer.json",
        "qformer_tokenizer/tokenizer_config.json",
        "qformer_tokenizer/vocab.txt",
        "special_tokens_map.json",
        "spiece.model",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    processor = model_store.ModelRepo(repo_id="x/proc", kind="processor")
    assert "qformer_tokenizer/vocab.txt" in model_store.select_files(processor, INSTRUCTBLIP_LISTING)


class FakeHubApi:
    """Answers model_info from a listing, as HfApi(files_metadata=True) does."""

    endpoint = "http://hub.invalid"

    def model_info(self, repo_id, revision=None, files_metadata=False):
        assert files_metadata and revision == "main"
        return SimpleNamespace(siblings=[RepoSibling(rfilename=name, size=100) for name in SD_TURBO_LISTING])


def test_plan_pull_sizes_what_would_be_fetched(online):
    plan = model_store.plan_pull("sd-turbo", api=FakeHubApi())
    [repo] = plan.repos
    assert repo.repo_id == SD_TURBO and len(repo.files) == 12
    assert plan.size_bytes == 1200
    assert model_store.remote_size(SD_TURBO, api=FakeHubApi()) == 1200


def test_names_and_groups():
    with pytest.raises(ValueError, match=r"`name` must be one of .*sd-turbo"):
        model_store.get_model_set("sd-99")
    scorers = model_store.get_model_set("scorers")
    assert [repo.repo_id for repo in scorers.repos] == [
        "yuvalkirstain/PickScore_v1",
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        "openai/clip-vit-large-patch14",
        "camenduru/improved-aesthetic-predictor",
        "Salesforce/instructblip-flan-t5-xl",
    ]
    assert len(model_store.get_model_set("all").repos) == 8


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_hub_is_a_hub_error(online):
    api = HfApi(endpoint=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(model_store.HubError, match="Cannot reach the Hugging Face Hub"):
        model_store.plan_pull("sd-turbo", api=api)


def test_offline_mode_is_read_at_call_time(online, monkeypatch):
    class Refusing:
        endpoint = "http://hub.invalid"

        def model_info(self, *args, **kwargs):
            raise AssertionError("no hub request may be made while offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # after huggingface_hub was imported
    for call in (model_store.plan_pull, model_store.pull):
        with pytest.raises(model_store.HubError, match="HF_HUB_OFFLINE is set"):
            call("sd-turbo", api=Refusing())
    with pytest.raises(model_store.HubError, match="HF_HUB_OFFLINE is set"):
        model_store.remote_size(SD_TURBO, api=Refusing())


def test_pull_fetches_by_pattern_and_completeness_is_then_judged_offline(
    hub, tiny_folder, tmp_path, online, monkeypatch
):
    from huggingface_hub import constants

    files = {str(p.relative_to(tiny_folder)): p.read_bytes() for p in tiny_folder.rglob("*") if p.is_file()}
    junk = {"README.md": b"card", "sd_turbo.safetensors": b"single-file", "vae_encoder/model.onnx": b"onnx"}
    fake = FakeHub(SD_TURBO, {COMMIT: {**files, **junk}}, {"main": COMMIT})
    try:
        api = HfApi(endpoint=fake.endpoint)
        plan = model_store.plan_pull("sd-turbo", api=api)
        [folder] = model_store.pull("sd-turbo", plan=plan, api=api)
    finally:
        fake.close()
    assert folder == model_store.local_snapshot(SD_TURBO)
    assert plan.repos[0].files == sorted(files)
    downloads = {request.split("/resolve/")[1].split("/", 1)[1] for request in fake.requests if "/resolve/" in request}
    assert downloads == set(files)  # every pipeline file, none of the junk beside it

    # Now offline, with no hub to ask: huggingface_hub judges the snapshot by the listing it cached.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert model_store.is_available("sd-turbo")
    snapshot = model_store.local_snapshot(SD_TURBO)
    assert not (snapshot / "README.md").exists()  # absent on purpose: the snapshot is still complete
    (snapshot / "tokenizer" / "tokenizer.json").unlink()
    # The layout rule alone (all a plain folder gets) cannot see a missing tokenizer file...
    assert model_store.is_available(str(shutil.copytree(snapshot, tmp_path / "copy")))
    # ...the listing huggingface_hub cached does.
    assert not model_store.is_available("sd-turbo")
    assert not model_store.is_available(SD_TURBO)
    assert model_store.local_snapshot(SD_TURBO) == snapshot  # partial, but still found


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_list_shows_presence_size_and_users(hub, tiny_folder):
    fake_snapshot(hub, SD_TURBO, tiny_folder)
    result = CliRunner().invoke(models_app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if "sd-turbo" in line and "sdxl" not in line]
    assert "yes" in row and "KB" in row and "generator" in row
    [row] = [line for line in result.output.splitlines() if line.startswith("│ pickscore")]
    assert "no" in row


def test_cli_pull_unknown_name_exits_2():
    result = CliRunner().invoke(models_app, ["pull", "sd-99", "--yes"])
    assert result.exit_code == 2
    assert "unknown model set" in result.output


def test_cli_pull_offline_exits_2(online, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    result = CliRunner().invoke(models_app, ["pull", "sd-turbo", "--yes"])
    assert result.exit_code == 2
    assert "Cannot reach the Hugging Face Hub" in result.output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(models_app, ["pull", "sd-turbo", "--yes"])
    assert result.exit_code == 2
    assert "HF_HUB_OFFLINE is set" in result.output


def test_cli_pull_shows_the_size_and_asks_first(online, monkeypatch):
    pulled = []
    real_plan = model_store.plan_pull
    monkeypatch.setattr(model_store, "plan_pull", lambda name, api=None: real_plan(name, api=FakeHubApi()))
    monkeypatch.setattr(model_store, "pull", lambda name, **kwargs: pulled.append(name) or [])
    declined = CliRunner().invoke(models_app, ["pull", "sd-turbo"], input="n\n")
    assert declined.exit_code == 1
    assert "1.2 KB to download" in declined.output and "Nothing downloaded" in declined.output
    assert pulled == []
    accepted = CliRunner().invoke(models_app, ["pull", "sd-turbo"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert pulled == ["sd-turbo"]


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1_500) == "1.5 KB"
    assert format_bytes(2_600_000_000) == "2.6 GB"


def test_an_instructblip_snapshot_needs_its_qformer_tokenizer(hub, tmp_path):
    """`models pull vqa` fetches qformer_tokenizer/ (pull_patterns keeps tokenizer subfolders);
    a snapshot without it is incomplete, and loading it is refused by name with the command
    that fetches it, instead of a quiet fallback to the Flan-T5 tokenizer."""
    from tiny_clip import save_tiny_instructblip

    from imageforge.tools.model_cache import ModelNotAvailableError, resolve_weights

    vqa_repo = "Salesforce/instructblip-flan-t5-xl"
    whole = save_tiny_instructblip(tmp_path / "instructblip")
    assert model_store.missing_subfolders(whole) == []
    partial = tmp_path / "partial"
    shutil.copytree(whole, partial, ignore=shutil.ignore_patterns("_*"))
    shutil.rmtree(partial / "qformer_tokenizer")
    assert model_store.missing_subfolders(partial) == ["qformer_tokenizer"]
    snapshot = fake_snapshot(hub, vqa_repo, partial)
    assert model_store.local_snapshot(vqa_repo) == snapshot
    assert not model_store.is_available("vqa") and not model_store.is_available(vqa_repo)
    assert not next(s for s in model_store.list_models() if s.name == "vqa").present
    with pytest.raises(ModelNotAvailableError, match=r"no qformer_tokenizer/.*`imageforge models pull vqa`"):
        resolve_weights(vqa_repo)
    # A local folder that lacks it is refused the same way.
    with pytest.raises(ModelNotAvailableError, match="no qformer_tokenizer/"):
        resolve_weights(str(partial))
    # Once the subfolder is there, the snapshot is complete.
    shutil.copytree(whole / "qformer_tokenizer", snapshot / "qformer_tokenizer")
    assert model_store.is_available("vqa")
    assert resolve_weights(vqa_repo) == (str(snapshot), True)


def test_the_aesthetic_head_is_verified_after_download(hub, online, monkeypatch):
    """The catalogue pins the published head's SHA-256; a download that differs is refused,
    removed from the cache and not installed where the loader looks."""
    aesthetic = model_store.CATALOGUE["aesthetic"]
    [repo] = aesthetic.repos
    assert (repo.repo_id, repo.filename) == (
        "camenduru/improved-aesthetic-predictor",
        "sac+logos+ava1-l14-linearMSE.pth",
    )
    assert repo.sha256 == "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"
    installed = model_store.hf_home() / repo.install_as

    served = b"not the LAION head"
    fake = FakeHub(repo.repo_id, {COMMIT: {repo.filename: served, "README.md": b"card"}}, {"main": COMMIT})
    try:
        api = HfApi(endpoint=fake.endpoint)
        with pytest.raises(model_store.HubError, match=r"SHA-256 .* not the published 21dd590f"):
            model_store.pull("aesthetic", api=api)
        assert not installed.exists()
        assert not model_store.is_available("aesthetic")

        # The same file under a catalogue entry that pins its hash is accepted and installed.
        pinned = repo.model_copy(update={"sha256": hashlib.sha256(served).hexdigest()})
        monkeypatch.setitem(model_store.CATALOGUE, "aesthetic", aesthetic.model_copy(update={"repos": (pinned,)}))
        model_store.pull("aesthetic", api=api)
    finally:
        fake.close()
    assert installed.read_bytes() == served
