"""Fixtures for the scorer tests: one torch thread per module, and tiny CLIP checkpoints saved
once per session (tests only read them; each loads its own copy through a fresh model cache)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from tests.tiny_clip import save_tiny_clip


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run no faster on more threads, and the machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def device(request) -> str:
    """cpu; IMAGEFORGE_TEST_DEVICE for the tests marked gpu (benchmarks/gpu_check.sh), where the
    scorers load in half precision."""
    from tests.tiny_models import device_for

    return device_for(request)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Callable[..., Path]:
    """``tiny_clip(projection_dim=32, seed=0)``: the folder of that tiny CLIP, saved on first use."""
    folders: dict[tuple[int, int], Path] = {}

    def folder(*, projection_dim: int = 32, seed: int = 0) -> Path:
        key = (projection_dim, seed)
        if key not in folders:
            root = tmp_path_factory.mktemp(f"tiny-clip-{projection_dim}-seed{seed}")
            folders[key] = save_tiny_clip(root, projection_dim=projection_dim, seed=seed)
        return folders[key]

    return folder


@pytest.fixture(scope="session")
def clip_dir(tiny_clip) -> Path:
    """The default tiny CLIP: 32-d embeddings, seed 0."""
    return tiny_clip()
