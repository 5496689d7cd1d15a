"""Named model sets, what of them is on disk, and downloading them on request.

The ``auto`` backends must never download behind the user's back: they use a real model only
when its weights are already on disk, in a local folder or in the Hugging Face cache. This
module answers "is it there?" without touching the network (``local_snapshot``,
``is_available``, ``list_models``, ``auto_generator_model``) and is the one place that
downloads, when the user asks (``imageforge models pull NAME`` -> ``plan_pull`` + ``pull``).

What ``pull`` fetches is decided from the repository's file listing by ``select_files``: for
a diffusers model the per-component configs and fp16 safetensors (not the single-file
checkpoints, ONNX or Flax copies beside them), for a transformers model its configs,
tokenizer files and one weight format. Presence is judged by the same families: a snapshot
counts only when every component it needs has its weights.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imageforge.tools.storage import atomic_write_bytes

if TYPE_CHECKING:
    from huggingface_hub import HfApi

__all__ = [
    "CATALOGUE",
    "GROUPS",
    "FolderKind",
    "HubError",
    "ModelRepo",
    "ModelSet",
    "ModelStatus",
    "PlannedRepo",
    "PullPlan",
    "auto_generator_model",
    "get_model_set",
    "hf_home",
    "hub_cache_dir",
    "is_available",
    "list_models",
    "local_model_path",
    "local_snapshot",
    "plan_pull",
    "pull",
    "remote_size",
    "select_files",
    "weights_variant",
]

logger = logging.getLogger(__name__)

RepoKind = Literal["diffusers", "transformers", "processor", "file"]
"""How a repository is laid out: a diffusers pipeline, a transformers model, a processor only
(tokenizer and image-processor configs, no weights), or one weight file."""
FolderKind = Literal["diffusers", "transformers", "processor"]
"""The kinds that are a folder (not one file), which a loader may ask ``local_model_path`` for."""


class ModelRepo(BaseModel):
    model_config = ConfigDict(frozen=True)

    repo_id: str
    kind: RepoKind
    filename: str | None = Field(None, description="The one file to fetch, for kind 'file'.")
    install_as: str | None = Field(
        None,
        description="For kind 'file': where the file also lives, relative to HF_HOME, for loaders "
        "that look there (the aesthetic head is published on GitHub; its loader defaults to "
        "HF_HOME/imageforge/). ``pull`` copies it there; a file found there counts as present.",
    )


class ModelSet(BaseModel):
    """A named set of repositories that one role needs."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    repos: tuple[ModelRepo, ...]
    used_by: tuple[str, ...]


class ModelStatus(BaseModel):
    """One row of ``imageforge models list``."""

    name: str
    description: str
    repo_ids: list[str]
    present: bool
    size_bytes: int = Field(description="Bytes on disk of the snapshots present (0 when none is).")
    used_by: list[str]


class PlannedRepo(BaseModel):
    repo_id: str
    files: list[str]
    size_bytes: int


class PullPlan(BaseModel):
    """What ``pull`` would download, listed before anything is fetched."""

    name: str
    repos: list[PlannedRepo]

    @property
    def size_bytes(self) -> int:
        return sum(repo.size_bytes for repo in self.repos)


_CLIP_L = "openai/clip-vit-large-patch14"

CATALOGUE: dict[str, ModelSet] = {
    model_set.name: model_set
    for model_set in (
        ModelSet(
            name="sd-turbo",
            description="Stable Diffusion Turbo (512 px, 1-4 steps; the CPU-friendly auto default)",
            repos=(ModelRepo(repo_id="stabilityai/sd-turbo", kind="diffusers"),),
            used_by=("generator: diffusers (auto default)",),
        ),
        ModelSet(
            name="sdxl-turbo",
            description="Stable Diffusion XL Turbo (512-1024 px, 1-4 steps)",
            repos=(ModelRepo(repo_id="stabilityai/sdxl-turbo", kind="diffusers"),),
            used_by=("generator: diffusers",),
        ),
        ModelSet(
            name="sd15",
            description="Stable Diffusion 1.5 (512 px, 25 steps)",
            repos=(ModelRepo(repo_id="stable-diffusion-v1-5/stable-diffusion-v1-5", kind="diffusers"),),
            used_by=("generator: diffusers",),
        ),
        ModelSet(
            name="pickscore",
            description="PickScore v1 (CLIP ViT-H/14 fine-tuned on human preferences) and its processor",
            repos=(
                ModelRepo(repo_id="yuvalkirstain/PickScore_v1", kind="transformers"),
                ModelRepo(repo_id="laion/CLIP-ViT-H-14-laion2B-s32B-b79K", kind="processor"),
            ),
            used_by=("scorer: pickscore",),
        ),
        ModelSet(
            name="clip-l",
            description="OpenAI CLIP ViT-L/14",
            repos=(ModelRepo(repo_id=_CLIP_L, kind="transformers"),),
            used_by=(
                "scorer: clip-score",
                "scorer: laion-aesthetic (image embeddings)",
                "consistency: embedding-consistency",
            ),
        ),
        ModelSet(
            name="aesthetic",
            description="LAION improved aesthetic predictor MLP (on CLIP ViT-L/14 embeddings; needs clip-l)",
            repos=(
                ModelRepo(
                    repo_id="camenduru/improved-aesthetic-predictor",
                    kind="file",
                    filename="sac+logos+ava1-l14-linearMSE.pth",
                    install_as="imageforge/sac+logos+ava1-l14-linearMSE.pth",
                ),
            ),
            used_by=("scorer: laion-aesthetic",),
        ),
        ModelSet(
            name="vqa",
            description="InstructBLIP Flan-T5-XL vision-language model for VQAScore (about 4B parameters)",
            repos=(ModelRepo(repo_id="Salesforce/instructblip-flan-t5-xl", kind="transformers"),),
            used_by=("scorer: vqascore",),
        ),
    )
}
"""Every downloadable set by name."""

GROUPS: dict[str, tuple[str, ...]] = {
    "scorers": ("pickscore", "clip-l", "aesthetic", "vqa"),
    "all": tuple(CATALOGUE),
}
"""Names that stand for several sets at once (``imageforge models pull scorers``)."""


def get_model_set(name: str) -> ModelSet:
    """The set called ``name``; a group becomes one set holding its members' repositories."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    if name in GROUPS:
        members = [CATALOGUE[member] for member in GROUPS[name]]
        repos = tuple(dict.fromkeys(repo for member in members for repo in member.repos))
        used_by = tuple(dict.fromkeys(role for member in members for role in member.used_by))
        return ModelSet(name=name, description=f"{', '.join(GROUPS[name])}", repos=repos, used_by=used_by)
    known = ", ".join(sorted([*CATALOGUE, *GROUPS]))
    raise ValueError(f"`name` must be one of {known}, got {name!r}.")


# -- what is on disk (never the network) ----------------------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time.

    huggingface_hub reads HF_HUB_CACHE / HF_HOME once, when it is imported; reading them
    here lets a process (or a test) point at another cache after start-up, and every
    function of this module passes the folder explicitly.
    """
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_home() -> Path:
    """HF_HOME, read at call time (see ``hub_cache_dir``)."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME)


def local_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id``'s main revision, or None when not cached.

    ``snapshot_download(local_files_only=True)`` only reads the cache. A snapshot that the
    hub's cached file listing shows as partial (``pull`` fetches a subset of the files on
    purpose) still comes back: whether it holds enough is the caller's check.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    try:
        path = snapshot_download(repo_id, cache_dir=hub_cache_dir(), local_files_only=True)
    except IncompleteSnapshotError as exc:
        path = exc.snapshot_path
    except (LocalEntryNotFoundError, ValueError) as exc:
        # ValueError covers repo ids that are not valid ids at all (HFValidationError).
        logger.debug("No cached snapshot of %s: %s", repo_id, exc)
        return None
    return Path(path) if path else None


_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _has_weights(folder: Path) -> bool:
    return any(path.name.endswith(_WEIGHT_SUFFIXES) for path in folder.iterdir() if path.is_file())


def _diffusers_complete(folder: Path) -> bool:
    """model_index.json, and every component it names present; model components with weights."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        return False
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        component_folder = folder / component
        if not component_folder.is_dir():
            return False
        if (component_folder / "config.json").is_file() and not _has_weights(component_folder):
            return False
    return True


def _is_complete(folder: Path, repo: ModelRepo) -> bool:
    if not folder.is_dir():
        return False
    if repo.kind == "diffusers":
        return _diffusers_complete(folder)
    if repo.kind == "transformers":
        return (folder / "config.json").is_file() and _has_weights(folder)
    if repo.kind == "processor":
        # transformers 5 writes processor_config.json; older versions preprocessor_config.json.
        return (folder / "preprocessor_config.json").is_file() or (folder / "processor_config.json").is_file()
    return repo.filename is not None and (folder / repo.filename).is_file()


def _guess_repo(folder: Path, name: str) -> ModelRepo:
    """The layout of a folder that is not in the catalogue, judged from its files."""
    kind: RepoKind = "diffusers" if (folder / "model_index.json").is_file() else "transformers"
    return ModelRepo(repo_id=name, kind=kind)


def _folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (or of the file); cache snapshots are symlinks into
    blobs/, so each blob is counted once."""
    if folder.is_file():
        return folder.stat().st_size
    seen: set[Path] = set()
    total = 0
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        total += real.stat().st_size
    return total


def local_model_path(name_or_path: str, kind: FolderKind | None = None) -> Path | None:
    """The complete local folder for a catalogue name, a local path or a hub id; else None.
    For a catalogue set of several repositories, the first one's folder; for a single-file
    set (aesthetic), the file.

    ``kind`` is the layout a loader needs (a processor repository holds no weights); without
    it a hub id is judged by its catalogue entry, and any other folder by its files. The
    scorers' loaders ask here too, so ``models list`` and a loader never disagree.
    """
    if name_or_path in CATALOGUE:
        paths = [_complete_snapshot(repo) for repo in CATALOGUE[name_or_path].repos]
        return paths[0] if all(path is not None for path in paths) else None
    folder: Path | None = Path(name_or_path).expanduser()
    if folder.is_file():
        return folder
    if not folder.is_dir():
        folder = local_snapshot(name_or_path)
        if folder is None:
            return None
    layout = (
        ModelRepo(repo_id=name_or_path, kind=kind)
        if kind is not None
        else _catalogued_repo(name_or_path) or _guess_repo(folder, name_or_path)
    )
    return folder if _is_complete(folder, layout) else None


def _catalogued_repo(repo_id: str) -> ModelRepo | None:
    for model_set in CATALOGUE.values():
        for repo in model_set.repos:
            if repo.repo_id == repo_id:
                return repo
    return None


def _complete_snapshot(repo: ModelRepo) -> Path | None:
    """Where ``repo`` is complete on disk: its cache snapshot folder, or for kind 'file' the
    file itself (in the snapshot, or installed beside the cache)."""
    snapshot = local_snapshot(repo.repo_id)
    if snapshot is not None and _is_complete(snapshot, repo):
        return snapshot / repo.filename if repo.kind == "file" and repo.filename else snapshot
    if repo.install_as is not None and (hf_home() / repo.install_as).is_file():
        return hf_home() / repo.install_as
    return None


def is_available(name_or_path: str) -> bool:
    """Whether a catalogue set, a local folder (with model_index.json or config.json and its
    weights) or a hub id (a complete snapshot in the cache) can be loaded without a download."""
    return local_model_path(name_or_path) is not None


def list_models() -> list[ModelStatus]:
    """Every catalogue set with whether it is present and its size on disk."""
    statuses = []
    for model_set in CATALOGUE.values():
        snapshots = [_complete_snapshot(repo) for repo in model_set.repos]
        present = all(path is not None for path in snapshots)
        size = sum(_folder_size(path) for path in snapshots if path is not None)
        statuses.append(
            ModelStatus(
                name=model_set.name,
                description=model_set.description,
                repo_ids=[repo.repo_id for repo in model_set.repos],
                present=present,
                size_bytes=size,
                used_by=list(model_set.used_by),
            )
        )
    return statuses


def auto_generator_model(configured: str | None = None) -> str | None:
    """The local folder the ``auto`` generator loads, or None (the sketch generator then runs).

    ``configured`` (a local path, a hub id or a catalogue name) wins when it is on disk;
    otherwise the sd-turbo snapshot when it is complete. Nothing is downloaded.
    """
    for candidate in (configured, "sd-turbo"):
        if candidate is None:
            continue
        path = local_model_path(candidate)
        if path is not None:
            return str(path)
        if candidate == configured:
            logger.info("Configured generator model %r is not on disk; trying the default.", configured)
    return None


# -- downloading (only on request) ----------------------------------------------------------

_SKIPPED_SUFFIXES = (
    ".ckpt",
    ".onnx",
    ".onnx_data",
    ".msgpack",
    ".h5",
    ".pb",
    ".ot",
    ".png",
    ".jpg",
    ".md",
)


def _weights_variant(filename: str) -> str | None:
    """The variant a weight file belongs to: "fp16" for ``model.fp16.safetensors`` or
    ``model.fp16-00001-of-00002.safetensors``, "non_ema" for ``*.non_ema.bin``, None for the
    plain weights."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if "." not in stem:
        return None
    return stem.split(".", 1)[1].split("-", 1)[0]


def _pick_weights(names: list[str], *, prefer_fp16: bool) -> list[str]:
    """One set of weights from one folder: the fp16 variant when wanted and present, else the
    plain weights; safetensors over PyTorch .bin in either case."""
    weights = [name for name in names if name.endswith(_WEIGHT_SUFFIXES)]
    fp16 = [name for name in weights if _weights_variant(name) == "fp16"]
    plain = [name for name in weights if _weights_variant(name) is None]
    chosen = fp16 if prefer_fp16 and fp16 else plain
    safetensors = [name for name in chosen if name.endswith(".safetensors")]
    return safetensors or chosen


def weights_variant(folder: str | Path) -> str | None:
    """The weights variant ``from_pretrained`` must be told for a diffusers folder: "fp16"
    when some component has only fp16 weights (what ``pull`` fetches), else None."""
    folder = Path(folder)
    for component in folder.iterdir() if folder.is_dir() else []:
        if not component.is_dir():
            continue
        names = [path.name for path in component.iterdir() if path.name.endswith(_WEIGHT_SUFFIXES)]
        if (
            names
            and not any(_weights_variant(name) is None for name in names)
            and any(_weights_variant(name) == "fp16" for name in names)
        ):
            return "fp16"
    return None


def select_files(repo: ModelRepo, filenames: Iterable[str]) -> list[str]:
    """The files of a repository that ``pull`` fetches, from its file listing.

    diffusers: ``model_index.json`` and, per component folder, configs and tokenizer files
    plus one weight format (fp16 safetensors when the folder has them). transformers:
    top-level configs, tokenizer files and one weight format (safetensors over .bin).
    processor: top-level JSON and text files. file: the one file.
    """
    names = sorted(filenames)
    if repo.kind == "file":
        if repo.filename not in names:
            raise ValueError(f"Repository {repo.repo_id!r} has no file {repo.filename!r}.")
        return [repo.filename]
    wanted: list[str] = []
    if repo.kind == "diffusers":
        folders: dict[str, list[str]] = {}
        for name in names:
            if name == "model_index.json":
                wanted.append(name)
            elif name.count("/") == 1 and not name.endswith(_SKIPPED_SUFFIXES):
                folders.setdefault(name.split("/")[0], []).append(name)
        for files in folders.values():
            others = [name for name in files if not name.endswith(_WEIGHT_SUFFIXES)]
            wanted += others + _pick_weights(files, prefer_fp16=True)
        return sorted(wanted)
    top_level = [name for name in names if "/" not in name and not name.endswith(_SKIPPED_SUFFIXES)]
    others = [name for name in top_level if not name.endswith(_WEIGHT_SUFFIXES)]
    if repo.kind == "processor":
        return [name for name in others if name.endswith((".json", ".txt", ".model"))]
    weights = [name for name in top_level if not name.startswith("open_clip")]
    return sorted(others + _pick_weights(weights, prefer_fp16=False))


def _api(api: HfApi | None) -> HfApi:
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi()


class HubError(RuntimeError):
    """The Hugging Face Hub could not list or serve a repository: offline, refused, missing
    or gated. The message says which and what to do."""


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a hub call raises for network and HTTP failures, across huggingface_hub
    versions (requests-based before 1.0, httpx-based since; both subclass OSError for HTTP
    status errors, not for every transport error)."""
    errors: list[type[BaseException]] = [OSError]
    try:
        from huggingface_hub.errors import HTTPError

        errors.append(HTTPError)
    except ImportError:
        pass
    return tuple(errors)


def _hub_error(exc: BaseException, repo_id: str, endpoint: str) -> HubError:
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(f"Cannot download {repo_id}: HF_HUB_OFFLINE is set. Unset it on a machine with internet.")
    if isinstance(exc, GatedRepoError):
        return HubError(
            f"{repo_id} is gated: accept its licence on the Hub and log in (`hf auth login`), then pull again."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(f"{repo_id} was not found on {endpoint} (or it is private and you are not logged in).")
    return HubError(f"Cannot reach the Hugging Face Hub at {endpoint} for {repo_id}: {exc}")


def _plan_repo(repo: ModelRepo, api: HfApi) -> PlannedRepo:
    try:
        info = api.model_info(repo.repo_id, files_metadata=True)
    except _hub_errors() as exc:
        raise _hub_error(exc, repo.repo_id, api.endpoint) from exc
    sizes: dict[str, int] = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}
    files = select_files(repo, sizes)
    return PlannedRepo(repo_id=repo.repo_id, files=files, size_bytes=sum(sizes[name] for name in files))


def remote_size(repo_id: str, *, api: HfApi | None = None) -> int:
    """Bytes ``pull`` downloads for ``repo_id`` (every file when it is not in the catalogue).
    Needs the network; ``HubError`` when the hub cannot answer."""
    client = _api(api)
    repo = _catalogued_repo(repo_id)
    if repo is not None:
        return _plan_repo(repo, client).size_bytes
    try:
        info = client.model_info(repo_id, files_metadata=True)
    except _hub_errors() as exc:
        raise _hub_error(exc, repo_id, client.endpoint) from exc
    return sum(sibling.size or 0 for sibling in info.siblings or [])


def plan_pull(name: str, *, api: HfApi | None = None) -> PullPlan:
    """What ``pull(name)`` would fetch and its size, from the hub's file listing (network).
    ``ValueError`` for an unknown name, ``HubError`` when the hub cannot answer."""
    model_set = get_model_set(name)
    client = _api(api)
    return PullPlan(name=model_set.name, repos=[_plan_repo(repo, client) for repo in model_set.repos])


def pull(
    name: str,
    *,
    plan: PullPlan | None = None,
    progress: Any = None,
    api: HfApi | None = None,
) -> list[Path]:
    """Download the set ``name`` into the Hugging Face cache; returns the snapshot folders.

    ``progress`` is a tqdm class for the byte progress bars (huggingface_hub's default bars
    when None). Files already in the cache are not fetched again. A file with ``install_as``
    is also copied there.
    """
    from huggingface_hub import snapshot_download

    model_set = get_model_set(name)
    client = _api(api)
    plan = plan or plan_pull(name, api=client)
    repos = {repo.repo_id: repo for repo in model_set.repos}
    paths = []
    for planned in plan.repos:
        logger.info("Downloading %s (%d files).", planned.repo_id, len(planned.files))
        try:
            folder = Path(
                snapshot_download(
                    planned.repo_id,
                    cache_dir=hub_cache_dir(),
                    allow_patterns=planned.files,
                    tqdm_class=progress,
                    endpoint=client.endpoint,
                )
            )
        except _hub_errors() as exc:
            raise _hub_error(exc, planned.repo_id, client.endpoint) from exc
        repo = repos.get(planned.repo_id)
        if repo is not None and repo.install_as is not None and repo.filename is not None:
            atomic_write_bytes(hf_home() / repo.install_as, (folder / repo.filename).read_bytes())
        paths.append(folder)
    return paths
