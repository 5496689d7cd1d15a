"""Which torch device and dtype a model runs on.

torch is imported inside the functions, never at module import: the CLI and the offline core
import this module without paying torch's start-up time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "CapabilityProbe",
    "cuda_index",
    "default_dtype",
    "device_lock",
    "dtype_name",
    "free_device_memory",
    "is_out_of_memory",
    "native_bf16",
    "resolve_device",
]

CapabilityProbe = Callable[[int], tuple[int, int]]
"""CUDA device index -> compute capability (major, minor), as ``torch.cuda.get_device_capability``."""

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

_device_locks: dict[str, threading.RLock] = {}
_device_locks_guard = threading.Lock()


def device_lock(device: str) -> threading.RLock:
    """The one lock of ``device`` in this process, held around every model forward pass.

    A worker runs several jobs at once, and their generator and scorer calls reach the same
    accelerator from different threads: two of them at once can exhaust its memory where each
    alone fits. Holding this lock for each call (a diffusion batch, one scorer batch) queues
    the device calls while everything else (the LLM, trace writes) goes on concurrently.
    Re-entrant, so a scorer that calls another model on the same device does not deadlock.
    "cuda" and "cuda:0" are the same device.
    """
    key = "cuda:0" if device == "cuda" else device
    with _device_locks_guard:
        lock = _device_locks.get(key)
        if lock is None:
            lock = _device_locks[key] = threading.RLock()
        return lock


def resolve_device(device: str = "auto") -> str:
    """The concrete device for ``device``: "auto" picks cuda, then mps, then cpu.

    An explicit accelerator that is not there is an error rather than a silent fall-back to
    the CPU, where a real model would be tens of times slower than the user expects.
    """
    if not _DEVICE_PATTERN.match(device):
        raise ValueError(f"`device` must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got {device!r}.")
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"`device` is {device!r} but torch sees no CUDA device; use 'auto' or 'cpu'.")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"`device` is {device!r} but torch sees only {torch.cuda.device_count()} CUDA device(s).")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("`device` is 'mps' but the MPS backend is not available; use 'auto' or 'cpu'.")
    return device


def cuda_index(device: str) -> int:
    """The CUDA device index ``device`` names: N for 'cuda:N'; for a bare 'cuda' the current
    device (where ``.to("cuda")`` puts a model), 0 when torch sees no CUDA device."""
    if ":" in device:
        return int(device.split(":", 1)[1])
    import torch

    return torch.cuda.current_device() if torch.cuda.is_available() else 0


def native_bf16(device: str, *, capability: CapabilityProbe | None = None) -> bool:
    """Whether the chosen CUDA device computes bfloat16 in hardware.

    The rule is ``torch.cuda.is_bf16_supported(including_emulation=False)``'s, compute
    capability 8.0 or newer (Ampere: A100, RTX 30xx and later; ROCm always), but applied to
    the device the model runs on: torch's function looks at the *current* device only, and
    its default ``including_emulation=True`` also says yes on a T4 (7.5) or V100 (7.0), where
    bfloat16 runs emulated and several times slower than float16. ``capability`` maps a
    device index to (major, minor); it defaults to ``torch.cuda.get_device_capability`` and
    is injected by tests.
    """
    if not device.startswith("cuda"):
        return False
    index = cuda_index(device)
    if capability is None:
        import torch

        if torch.version.hip:
            return True
        if not torch.cuda.is_available():
            return False
        capability = torch.cuda.get_device_capability
    return tuple(capability(index)) >= (8, 0)


def default_dtype(
    device: str,
    *,
    prefer_bf16: bool = False,
    half_on_mps: bool = True,
    capability: CapabilityProbe | None = None,
) -> torch.dtype:
    """Half precision on accelerators, full precision on the CPU.

    On CUDA, float16 unless ``prefer_bf16`` (FLUX, SD3 and Flan-T5 were trained in bfloat16
    and overflow in float16) and the chosen GPU computes bfloat16 natively (``native_bf16``;
    ``capability`` is passed on to it). MPS runs float16 well for the generators; the
    scorers pass ``half_on_mps=False`` and keep float32 there. CPU kernels for half
    precision are slow or missing, so the CPU gets float32.
    """
    import torch

    if device.startswith("cuda"):
        if prefer_bf16 and native_bf16(device, capability=capability):
            return torch.bfloat16
        return torch.float16
    if device == "mps":
        return torch.float16 if half_on_mps else torch.float32
    if device == "cpu":
        return torch.float32
    raise ValueError(f"`device` must be a resolved device ('cpu', 'mps', 'cuda', 'cuda:N'), got {device!r}.")


def dtype_name(dtype: torch.dtype) -> str:
    """'float16' for torch.float16: the form traces and metadata record."""
    return str(dtype).removeprefix("torch.")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an accelerator (or host) running out of memory.

    torch raises ``torch.OutOfMemoryError`` for CUDA; MPS and some CUDA paths raise a plain
    RuntimeError whose message says "out of memory".
    """
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_device_memory(device: str) -> None:
    """Return cached blocks to the allocator after an out-of-memory error, before retrying.
    ``"any"`` empties whichever accelerator is present (for callers that do not know theirs)."""
    import gc

    import torch

    gc.collect()
    if device.startswith(("cuda", "any")) and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device in ("mps", "any") and torch.backends.mps.is_available():
        torch.mps.empty_cache()
