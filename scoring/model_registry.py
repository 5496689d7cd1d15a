"""The process-wide model registry: each model is loaded once, lazily, on its device.

Scorers and generators ask for a model by key with a loader; the first request runs the
loader, later requests get the same object. A lock per key means two concurrent requests
for the same model load it once, while requests for different models load in parallel
(a slow VLM load does not hold up a CLIP load). ``loaded()`` feeds the health endpoint.

It also answers "are these weights already here?" without touching the network
(``local_weights``), which is what the ``auto`` backends and every loader rely on: a model is
loaded from a local path or the Hugging Face cache, and downloaded only when asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "MODEL_FILES",
    "PROCESSOR_FILES",
    "LoadedModel",
    "ModelNotAvailableError",
    "ModelRegistry",
    "hub_cache_dir",
    "local_weights",
    "registry",
    "resolve_device",
    "resolve_weights",
]

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model, as the health endpoint shows it."""

    key: str
    kind: str
    device: str
    load_time_s: float


class ModelRegistry:
    """Loads each model once per key; safe under concurrent requests.

    A loader that raises caches nothing, so a later request tries again (for instance after
    the weights were pulled).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._models: dict[str, Any] = {}
        self._info: dict[str, LoadedModel] = {}

    def get(self, key: str, loader: Callable[[], T], *, device: str, kind: str) -> T:
        if not key:
            raise ValueError(f"`key` must be a non-empty string, got {key!r}.")
        with self._guard:
            if key in self._models:
                return self._models[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            # Another thread may have finished loading while this one waited for the lock.
            with self._guard:
                if key in self._models:
                    return self._models[key]
            start = time.perf_counter()
            model = loader()
            elapsed = time.perf_counter() - start
            with self._guard:
                self._models[key] = model
                self._info[key] = LoadedModel(
                    key=key, kind=kind, device=device, load_time_s=elapsed
                )
            return model

    def loaded(self) -> list[LoadedModel]:
        """What is loaded, in load order."""
        with self._guard:
            return list(self._info.values())

    def clear(self) -> None:
        """Forget every model (tests, or freeing memory); the next ``get`` loads again."""
        with self._guard:
            self._models.clear()
            self._info.clear()
            self._key_locks.clear()


registry = ModelRegistry()
"""The one registry of this process."""


MODEL_FILES: tuple[str, ...] = (
    "config.json",
    "*.safetensors|*.bin|*.safetensors.index.json|*.bin.index.json",
)
"""What a transformers model folder must hold to count as present (each entry: any of ``|``)."""
PROCESSOR_FILES: tuple[str, ...] = ("preprocessor_config.json|processor_config.json", "tokenizer*")
"""What a processor-only folder must hold (PickScore takes its processor from another repo)."""


class ModelNotAvailableError(LookupError):
    """The weights are neither at a local path nor in the Hugging Face cache, and downloading
    was not allowed. The message names the model and how to fetch it."""


def _holds(folder: Path, required: tuple[str, ...]) -> bool:
    return all(
        any(next(folder.glob(p), None) is not None for p in entry.split("|")) for entry in required
    )


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (huggingface_hub
    reads it once at import), the same rule as ``tools.model_store``."""
    import os

    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def local_weights(name_or_path: str, required: tuple[str, ...] = MODEL_FILES) -> Path | None:
    """Where ``name_or_path`` already lies on disk, or None; never touches the network.

    An existing path is returned as it is (the user named it). A hub id counts only when the
    cache's current snapshot holds the ``required`` files, so an interrupted download (a
    config without weights) is not mistaken for a model, while a snapshot that holds only
    the files ``imageforge models pull`` chose (huggingface_hub calls it incomplete) is.
    """
    if not name_or_path:
        raise ValueError(f"`name_or_path` must be a non-empty string, got {name_or_path!r}.")
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, IncompleteSnapshotError

    try:
        folder = Path(
            snapshot_download(
                repo_id=name_or_path, cache_dir=hub_cache_dir(), local_files_only=True
            )
        )
    except IncompleteSnapshotError as exc:
        folder = Path(exc.snapshot_path)
    except (OSError, HFValidationError, ValueError):
        return None
    return folder if folder.is_dir() and _holds(folder, required) else None


def resolve_weights(
    name_or_path: str, *, allow_download: bool = False, required: tuple[str, ...] = MODEL_FILES
) -> tuple[str, bool]:
    """``(source, local_only)`` for ``from_pretrained``: the local folder when the weights are
    here, else the hub id when downloading is allowed, else ``ModelNotAvailableError``."""
    local = local_weights(name_or_path, required)
    if local is not None:
        return str(local), True
    if allow_download:
        return name_or_path, False
    raise ModelNotAvailableError(
        f"Model {name_or_path!r} is not on disk (neither a local path nor in the Hugging Face cache) "
        "and downloading was not allowed. Download it once on a machine with internet "
        f"(`imageforge models pull` or `huggingface-cli download {name_or_path}`) or pass a local path."
    )


def resolve_device(device: str = "auto") -> str:
    """'auto' picks cuda, then mps, then cpu; anything else is checked and returned."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}."
        ) from exc
    return device
