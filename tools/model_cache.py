"""The process-wide model cache: each model is loaded once, lazily, on its device.

Scorers and generators ask for a model by key with a loader; the first request runs the
loader, later requests get the same object. A lock per key means two concurrent requests
for the same model load it once, while requests for different models load in parallel
(a slow VLM load does not hold up a CLIP load). ``loaded()`` feeds the health endpoint.

Loaders turn a model id into what ``from_pretrained`` reads with ``resolve_weights``: a local
path or the Hugging Face cache (judged by ``tools.model_store``, as ``imageforge models list``
judges it), and the hub only when downloading was asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from imageforge.tools.model_store import FolderKind, hub_cache_dir, local_model_path, missing_subfolders_error

__all__ = [
    "LoadedModel",
    "ModelCache",
    "ModelNotAvailableError",
    "model_cache",
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


class ModelCache:
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
                self._info[key] = LoadedModel(key=key, kind=kind, device=device, load_time_s=elapsed)
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


model_cache = ModelCache()
"""The one model cache of this process."""


class ModelNotAvailableError(LookupError):
    """The weights are neither at a local path nor in the Hugging Face cache, and downloading
    was not allowed. The message names the model and how to fetch it."""


def resolve_weights(
    name_or_path: str, *, allow_download: bool = False, kind: FolderKind = "transformers"
) -> tuple[str, bool]:
    """``(source, local_only)`` for ``from_pretrained``: the local folder when the weights are
    here, else the hub id when downloading is allowed, else ``ModelNotAvailableError``.

    "Here" is ``tools.model_store.local_model_path``'s answer for ``kind`` ("transformers": a
    config and its weights; "processor": a processor config, no weights), the same one that
    ``imageforge models list`` and the ``auto`` backends give, so a model listed as present
    is one the loaders take. Never touches the network.
    """
    if not name_or_path:
        raise ValueError(f"`name_or_path` must be a non-empty string, got {name_or_path!r}.")
    local = local_model_path(name_or_path, kind=kind)
    if local is not None:
        return str(local), True
    # On disk but missing a tokenizer subfolder (InstructBLIP's qformer_tokenizer/): refused with
    # what to fetch; a hub id may still be downloaded whole when that is allowed.
    incomplete = missing_subfolders_error(name_or_path) if kind == "transformers" else None
    if incomplete is not None and not (allow_download and not Path(name_or_path).expanduser().is_dir()):
        raise ModelNotAvailableError(incomplete)
    if allow_download:
        return name_or_path, False
    raise ModelNotAvailableError(
        f"Model {name_or_path!r} is not on disk (neither a complete local folder nor in the Hugging "
        f"Face cache at {hub_cache_dir()}) and downloading was not allowed. Download it once on a "
        f"machine with internet (`imageforge models pull` or `huggingface-cli download {name_or_path}`) "
        "or pass a local path."
    )
