"""Named model sets, what of them is on disk, and downloading them on request.

The ``auto`` backends must never download behind the user's back: they use a real model only
when its weights are already on disk, in a local folder or in the Hugging Face cache. This
module answers "is it there?" without touching the network (``local_snapshot``,
``is_available``, ``list_models``, ``auto_generator_model``) and is the one place that
downloads, when the user asks (``imageforge models pull NAME`` -> ``plan_pull`` + ``pull``).

huggingface_hub does the work: ``snapshot_download`` fetches with allow/ignore patterns and,
with ``local_files_only=True``, finds a snapshot and checks it against the listing it cached;
``scan_cache_dir`` measures it. Added here: which files to fetch (``pull_patterns``) and a
layout rule huggingface_hub has no notion of (every component a model needs has weights).

Revisions are pinned: ``pull`` records the commit it fetched (the snapshot folder's name is the
commit hash) in ``HF_HOME/imageforge/revisions.json``, and every lookup here (so every loader,
through ``tools.model_cache.resolve_weights``) reads that commit, not whatever ``main`` points
at now. ``imageforge models pull NAME --revision REV`` fetches and pins a given branch, tag or
commit.
"""

from __future__ import annotations

import glob
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
    "missing_subfolders",
    "missing_subfolders_error",
    "plan_pull",
    "pull",
    "pull_patterns",
    "recorded_revision",
    "recorded_revisions",
    "remote_size",
    "revisions_file",
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
    revision: str = Field("main", description="The branch, tag or commit that ``pull`` fetches and lookups read.")
    filename: str | None = Field(None, description="The one file to fetch, for kind 'file'.")
    sha256: str | None = Field(
        None,
        description="For kind 'file': the file's published SHA-256; ``pull`` verifies the download against it and "
        "refuses (and removes) a file that differs.",
    )
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
    revision: str
    files: list[str]
    size_bytes: int
    allow_patterns: list[str]
    ignore_patterns: list[str]


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
                    # The LFS object of LAION's release (3,714,759 bytes), identical in every
                    # Hub copy of it (camenduru, trl-lib/ddpo-aesthetic-predictor, ...).
                    sha256="21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
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
# huggingface_hub.constants reads HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE once, at import; its
# rules are restated here so that they are read at call time (a process or a test may change them).


def hf_home() -> Path:
    """HF_HOME, else XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    return Path(os.path.expandvars(os.environ.get("HF_HOME") or default)).expanduser()


def hub_cache_dir() -> Path:
    """HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub; passed to every hub call here."""
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(os.path.expandvars(cache)).expanduser() if cache else hf_home() / "hub"


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set now, or huggingface_hub put offline."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in constants.ENV_VARS_TRUE_VALUES or constants.is_offline_mode()


def local_snapshot(
    repo_id: str, revision: str = "main", *, patterns: tuple[list[str], list[str]] | None = None
) -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision``, or None.

    Without ``patterns`` a partial snapshot still comes back (``pull`` fetches a subset on
    purpose; whether it holds enough is the caller's check). With ``(allow, ignore)`` it comes
    back only when it holds every file they select from the listing huggingface_hub cached.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    allow, ignore = patterns or (None, None)
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=hub_cache_dir(),
            local_files_only=True,
            allow_patterns=allow,
            ignore_patterns=ignore,
        )
    except IncompleteSnapshotError as exc:
        return None if patterns else Path(exc.snapshot_path)
    except (LocalEntryNotFoundError, ValueError) as exc:  # ValueError: not a valid repo id at all
        logger.debug("No cached snapshot of %s: %s", repo_id, exc)
        return None
    return Path(folder)


_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _has_weights(folder: Path) -> bool:
    return any(path.name.endswith(_WEIGHT_SUFFIXES) for path in folder.iterdir() if path.is_file())


_REQUIRED_SUBFOLDERS: dict[str, tuple[str, ...]] = {
    "instructblip": ("qformer_tokenizer",),
    "instructblipvideo": ("qformer_tokenizer",),
}
"""Tokenizer subfolders a transformers model's processor needs, by ``config.json``'s
``model_type``. InstructBLIP's Q-Former has its own (BERT) tokenizer in
``qformer_tokenizer/``; without it transformers 5 loads the language model's tokenizer for
the Q-Former with only a warning: every VQAScore is then wrong, and a token id past the
Q-Former's 30,523-entry embedding is an IndexError on the CPU and a device-side assert that
poisons the CUDA context on a GPU."""


def _model_type(folder: Path) -> str:
    try:
        return str(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def missing_subfolders(folder: Path) -> list[str]:
    """The tokenizer subfolders the model in ``folder`` needs and lacks (see
    ``_REQUIRED_SUBFOLDERS``); a subfolder counts when it holds a tokenizer config."""
    folder = Path(folder)
    return [
        name
        for name in _REQUIRED_SUBFOLDERS.get(_model_type(folder), ())
        if not any((folder / name / config).is_file() for config in ("tokenizer_config.json", "tokenizer.json"))
    ]


def missing_subfolders_error(name_or_path: str) -> str | None:
    """Why ``name_or_path`` is on disk but cannot be loaded because a tokenizer subfolder is
    missing, with the command that fetches it; None when that is not the problem."""
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        snapshot = local_snapshot(name_or_path) if name_or_path not in CATALOGUE else None
        if snapshot is None:
            return None
        folder = snapshot
    missing = missing_subfolders(folder)
    if not missing:
        return None
    named = ", ".join(f"{name}/" for name in missing)
    catalogued = next((s.name for s in CATALOGUE.values() for repo in s.repos if repo.repo_id == name_or_path), None)
    if catalogued is not None:
        fetch = f"`imageforge models pull {catalogued}`"
    elif Path(name_or_path).expanduser().is_dir():
        fetch = f"`imageforge models pull vqa`, or copy {named} from the model's hub repository"
    else:
        includes = " ".join(f"--include '{name}/*'" for name in missing)
        fetch = f"`hf download {name_or_path} {includes}`"
    return (
        f"Model {name_or_path!r} at {folder} has no {named} ({_model_type(folder)}'s Q-Former tokenizer). Refusing "
        "to load it: transformers would fall back to the language model's tokenizer for the Q-Former, which makes "
        f"every score wrong and can index past the Q-Former's embedding. Fetch it with {fetch}."
    )


def _is_complete(folder: Path, repo: ModelRepo) -> bool:
    """The layout rule, which huggingface_hub has no notion of: diffusers, model_index.json and
    each component it names, model components with weights; transformers, config.json and
    weights, and the tokenizer subfolders its processor needs (``missing_subfolders``:
    InstructBLIP's ``qformer_tokenizer/``); processor, a processor config; file, the file."""
    if not folder.is_dir():
        return False
    if repo.kind == "transformers":
        return (folder / "config.json").is_file() and _has_weights(folder) and not missing_subfolders(folder)
    if repo.kind == "processor":
        # transformers 5 writes processor_config.json; older versions preprocessor_config.json.
        return (folder / "preprocessor_config.json").is_file() or (folder / "processor_config.json").is_file()
    if repo.kind == "file":
        return repo.filename is not None and (folder / repo.filename).is_file()
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    components = [name for name, spec in index.items() if isinstance(spec, list) and spec[0] is not None]
    return all(
        (folder / name).is_dir() and (_has_weights(folder / name) or not (folder / name / "config.json").is_file())
        for name in components
        if not name.startswith("_")
    )


def _complete_snapshot(repo: ModelRepo) -> Path | None:
    """Where ``repo`` is complete on disk: its snapshot (huggingface_hub's check against the
    listing a pull cached, when there is one, and the layout rule), for kind 'file' the file
    itself, in the snapshot or installed beside the cache."""
    from huggingface_hub import get_cached_repo_tree
    from huggingface_hub.errors import CachedRepoTreeNotFoundError

    repo = _pinned(repo)
    try:
        listing = get_cached_repo_tree(repo.repo_id, revision=repo.revision, cache_dir=hub_cache_dir())
        patterns = pull_patterns(repo, [entry.path for entry in listing])
    except (CachedRepoTreeNotFoundError, ValueError):
        patterns = None  # no listing cached (another tool's download): the layout rule alone judges
    snapshot = local_snapshot(repo.repo_id, repo.revision, patterns=patterns)
    if snapshot is not None and _is_complete(snapshot, repo):
        return snapshot / repo.filename if repo.kind == "file" and repo.filename else snapshot
    if repo.install_as is not None and (hf_home() / repo.install_as).is_file():
        return hf_home() / repo.install_as
    return None


def revisions_file() -> Path:
    """Where ``pull`` records the commit it fetched of each repository."""
    return hf_home() / "imageforge" / "revisions.json"


def recorded_revisions() -> dict[str, str]:
    """Repository id -> the commit ``pull`` fetched last; empty when nothing was pulled."""
    try:
        data = json.loads(revisions_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def recorded_revision(repo_id: str) -> str | None:
    """The commit of ``repo_id`` that ``pull`` fetched (and loaders read), or None."""
    return recorded_revisions().get(repo_id)


def _record_revision(repo_id: str, commit: str) -> None:
    revisions = recorded_revisions()
    revisions[repo_id] = commit
    atomic_write_bytes(revisions_file(), (json.dumps(revisions, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _pinned(repo: ModelRepo) -> ModelRepo:
    """``repo`` at the commit recorded for it, when one was."""
    commit = recorded_revision(repo.repo_id)
    return repo if commit is None or commit == repo.revision else repo.model_copy(update={"revision": commit})


def _catalogued_repo(repo_id: str) -> ModelRepo | None:
    return next((repo for s in CATALOGUE.values() for repo in s.repos if repo.repo_id == repo_id), None)


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
    folder = Path(name_or_path).expanduser()
    if folder.is_file():
        return folder
    if folder.is_dir():
        return folder if _is_complete(folder, ModelRepo(repo_id=name_or_path, kind=kind or _layout(folder))) else None
    repo = _catalogued_repo(name_or_path) if kind is None else None
    if repo is None:
        snapshot = local_snapshot(name_or_path, recorded_revision(name_or_path) or "main")
        if snapshot is None:
            return None
        repo = ModelRepo(repo_id=name_or_path, kind=kind or _layout(snapshot))
    return _complete_snapshot(repo)


def _layout(folder: Path) -> FolderKind:
    return "diffusers" if (folder / "model_index.json").is_file() else "transformers"


def is_available(name_or_path: str) -> bool:
    """Whether a catalogue set, a local folder (with model_index.json or config.json and its
    weights) or a hub id (a complete snapshot in the cache) can be loaded without a download."""
    return local_model_path(name_or_path) is not None


def list_models() -> list[ModelStatus]:
    """Every catalogue set with whether it is present and its size on disk."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:  # bytes per snapshot, each blob counted once
        revisions = [rev for repo in scan_cache_dir(hub_cache_dir()).repos for rev in repo.revisions]
    except CacheNotFound:
        revisions = []
    sizes = {rev.snapshot_path: rev.size_on_disk for rev in revisions}
    statuses = []
    for model_set in CATALOGUE.values():
        paths = [_complete_snapshot(repo) for repo in model_set.repos]
        present = [path for path in paths if path is not None]
        statuses.append(
            ModelStatus(
                name=model_set.name,
                description=model_set.description,
                repo_ids=[repo.repo_id for repo in model_set.repos],
                present=len(present) == len(paths),
                size_bytes=sum(p.stat().st_size if p.is_file() else sizes.get(p.resolve(), 0) for p in present),
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


def _weights_variant(filename: str) -> str | None:
    """A weight file's variant: "fp16" for ``model.fp16.safetensors`` and
    ``model.fp16-00001-of-00002.safetensors``, "non_ema" for ``*.non_ema.bin``, None if plain."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return stem.split(".", 1)[1].split("-", 1)[0] if "." in stem else None


def weights_variant(folder: str | Path) -> str | None:
    """The weights variant ``from_pretrained`` must be told for a diffusers folder (it does not
    infer it): "fp16" when some component has only fp16 weights (what ``pull`` fetches)."""
    folder = Path(folder)
    for component in (path for path in (folder.iterdir() if folder.is_dir() else []) if path.is_dir()):
        variants = {_weights_variant(p.name) for p in component.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES)}
        if "fp16" in variants and None not in variants:
            return "fp16"
    return None


# -- what to fetch: a pure function of the repository's file listing -------------------------

_NEVER = ["*.ckpt", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.pb", "*.ot", "*.png", "*.jpg", "*.md"]
"""Other frameworks' copies, single-file checkpoints, model cards and images."""
_CONFIGS = ["*.json", "*.txt", "*.model"]
"""Configs, tokenizer vocabularies and merges, sentencepiece models."""
_PROCESSOR_FILES = ("/tokenizer_config.json", "/tokenizer.json", "/preprocessor_config.json", "/processor_config.json")
"""A subfolder holding one of these is a tokenizer or processor (``qformer_tokenizer/``)."""


def _pick_weights(names: list[str], *, prefer_fp16: bool) -> list[str]:
    """One set of weights from one folder: the fp16 variant when wanted and present, else the
    plain weights; safetensors over PyTorch .bin in either case."""
    weights = [name for name in names if name.endswith(_WEIGHT_SUFFIXES)]
    fp16 = [name for name in weights if _weights_variant(name) == "fp16"]
    chosen = fp16 if prefer_fp16 and fp16 else [name for name in weights if _weights_variant(name) is None]
    return [name for name in chosen if name.endswith(".safetensors")] or chosen


def pull_patterns(repo: ModelRepo, filenames: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(allow_patterns, ignore_patterns)`` for ``snapshot_download`` (fnmatch: ``*`` also
    matches ``/``), from the repository's file listing.

    diffusers: ``model_index.json`` and, in each component folder (not deeper), configs,
    tokenizer files and one weight format, fp16 safetensors when the folder has them.
    transformers: configs and tokenizer files, at the top and in tokenizer or processor
    subfolders, and one top-level weight format (safetensors over .bin; not open_clip's).
    processor: the same without weights. file: the file (``ValueError`` when it is missing).
    """
    names = sorted(filenames)
    if repo.kind == "file":
        if repo.filename not in names:
            raise ValueError(f"Repository {repo.repo_id!r} has no file {repo.filename!r}.")
        return [glob.escape(repo.filename)], []
    folders = sorted({name.split("/", 1)[0] for name in names if "/" in name})
    if repo.kind == "diffusers":
        weights = [
            weight
            for folder in folders
            for weight in _pick_weights([n for n in names if n.rsplit("/", 1)[0] == folder], prefer_fp16=True)
        ]
        allow = ["model_index.json", *(f"*/{pattern}" for pattern in _CONFIGS)]
        return allow + [glob.escape(name) for name in weights], [*_NEVER, "*/*/*"]
    processor_folders = {name.split("/", 1)[0] for name in names if name.endswith(_PROCESSOR_FILES)}
    ignore = [*_NEVER, *(f"{folder}/*" for folder in folders if folder not in processor_folders)]
    if repo.kind == "processor":
        return list(_CONFIGS), ignore
    top_level = [name for name in names if "/" not in name and not name.startswith("open_clip")]
    return _CONFIGS + [glob.escape(name) for name in _pick_weights(top_level, prefer_fp16=False)], ignore


def select_files(repo: ModelRepo, filenames: Iterable[str]) -> list[str]:
    """The files of the listing that ``pull`` fetches (``pull_patterns`` through huggingface_hub's
    own filter)."""
    from huggingface_hub.utils import filter_repo_objects

    names = sorted(filenames)
    allow, ignore = pull_patterns(repo, names)
    return list(filter_repo_objects(names, allow_patterns=allow, ignore_patterns=ignore))


# -- downloading (only on request) ----------------------------------------------------------


class HubError(RuntimeError):
    """The Hugging Face Hub could not list or serve a repository: offline, refused, missing
    or gated. The message says which and what to do."""


def _offline(what: str) -> HubError:
    return HubError(f"Cannot download {what}: HF_HUB_OFFLINE is set. Unset it on a machine with internet.")


def _online_api(api: HfApi | None, what: str) -> HfApi:
    """``api``, or an HfApi for HF_ENDPOINT; ``HubError`` when offline, before any request."""
    from huggingface_hub import HfApi

    if _hub_offline():
        raise _offline(what)
    return api or HfApi()


def _hub_error(exc: BaseException, repo_id: str, endpoint: str) -> HubError:
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return _offline(repo_id)
    if isinstance(exc, GatedRepoError):
        return HubError(
            f"{repo_id} is gated: accept its licence on the Hub and log in (`hf auth login`), then pull again."
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{repo_id} has no such revision (branch, tag or commit) on {endpoint}.")
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(f"{repo_id} was not found on {endpoint} (or it is private and you are not logged in).")
    return HubError(f"Cannot reach the Hugging Face Hub at {endpoint} for {repo_id}: {exc}")


def _listing(repo_id: str, revision: str, api: HfApi) -> dict[str, int]:
    """File name -> bytes, from the hub. HTTP status errors subclass OSError; refused and timed
    out connections, the HTTP client's HTTPError."""
    from huggingface_hub.errors import HTTPError

    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except (OSError, HTTPError) as exc:
        raise _hub_error(exc, repo_id, api.endpoint) from exc
    return {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}


def _plan_repo(repo: ModelRepo, api: HfApi) -> PlannedRepo:
    sizes = _listing(repo.repo_id, repo.revision, api)
    allow, ignore = pull_patterns(repo, sizes)
    files = select_files(repo, sizes)
    size = sum(sizes[name] for name in files)
    return PlannedRepo(
        repo_id=repo.repo_id,
        revision=repo.revision,
        files=files,
        size_bytes=size,
        allow_patterns=allow,
        ignore_patterns=ignore,
    )


def remote_size(repo_id: str, *, api: HfApi | None = None) -> int:
    """Bytes ``pull`` downloads for ``repo_id`` (every file when it is not in the catalogue).
    Needs the network; ``HubError`` when offline or the hub cannot answer."""
    client = _online_api(api, repo_id)
    repo = _catalogued_repo(repo_id)
    return _plan_repo(repo, client).size_bytes if repo else sum(_listing(repo_id, "main", client).values())


def plan_pull(name: str, *, api: HfApi | None = None, revisions: dict[str, str] | None = None) -> PullPlan:
    """What ``pull(name)`` would fetch and its size, from the hub's file listing (network).

    ``revisions`` (repository id -> branch, tag or commit) fetches those instead of the
    catalogue's revision. ``ValueError`` for an unknown name or a revision for a repository
    the set does not hold, ``HubError`` when offline or the hub cannot answer.
    """
    model_set = get_model_set(name)
    revisions = revisions or {}
    unknown = sorted(set(revisions) - {repo.repo_id for repo in model_set.repos})
    if unknown:
        held = ", ".join(repo.repo_id for repo in model_set.repos)
        raise ValueError(f"{model_set.name} holds {held}, not {', '.join(unknown)}.")
    repos = [
        repo.model_copy(update={"revision": revisions[repo.repo_id]}) if repo.repo_id in revisions else repo
        for repo in model_set.repos
    ]
    client = _online_api(api, model_set.name)
    return PullPlan(name=model_set.name, repos=[_plan_repo(repo, client) for repo in repos])


def _verify_sha256(path: Path, repo: ModelRepo) -> None:
    """``HubError`` when the downloaded ``path`` is not the published file; the bad copy is
    removed from the cache (the snapshot link and its blob) so that it never counts as present."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() == repo.sha256:
        return
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)
    raise HubError(
        f"{repo.repo_id}/{repo.filename} has SHA-256 {digest.hexdigest()}, not the published {repo.sha256}: "
        "the download is corrupt or the repository now serves another file. It was removed and not installed."
    )


def pull(
    name: str,
    *,
    plan: PullPlan | None = None,
    progress: Any = None,
    api: HfApi | None = None,
) -> list[Path]:
    """Download the set ``name`` into the Hugging Face cache; returns the snapshot folders.

    ``progress`` is a tqdm class for the byte progress bars (huggingface_hub's default bars
    when None). Files already in the cache are not fetched again. A file with ``sha256`` is
    verified after the download (``HubError`` when it differs); one with ``install_as`` is
    also copied there. The commit fetched (the snapshot folder's name) is recorded
    (``recorded_revision``), and lookups and loaders read that commit from then on.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HTTPError

    model_set = get_model_set(name)
    client = _online_api(api, model_set.name)
    plan = plan or plan_pull(name, api=client)
    repos = {repo.repo_id: repo for repo in model_set.repos}
    paths = []
    for planned in plan.repos:
        logger.info("Downloading %s (%d files).", planned.repo_id, len(planned.files))
        try:
            folder = Path(
                snapshot_download(
                    planned.repo_id,
                    revision=planned.revision,
                    cache_dir=hub_cache_dir(),
                    allow_patterns=planned.allow_patterns,
                    ignore_patterns=planned.ignore_patterns,
                    tqdm_class=progress,
                    endpoint=client.endpoint,
                    token=client.token,
                )
            )
        except (OSError, HTTPError) as exc:
            raise _hub_error(exc, planned.repo_id, client.endpoint) from exc
        repo = repos.get(planned.repo_id)
        if repo is not None and repo.sha256 is not None and repo.filename is not None:
            _verify_sha256(folder / repo.filename, repo)
        if repo is not None and repo.install_as is not None and repo.filename is not None:
            atomic_write_bytes(hf_home() / repo.install_as, (folder / repo.filename).read_bytes())
        _record_revision(planned.repo_id, folder.name)  # snapshots/<commit hash>
        paths.append(folder)
    return paths
