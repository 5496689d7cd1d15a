"""Device and dtype choice, shared by the generators and the scorers."""

from __future__ import annotations

import pytest
import torch

from imageforge.tools.devices import default_dtype, dtype_name, is_out_of_memory, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="`device`"):
        resolve_device("gpu-please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_absent_accelerator_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda:0")


def test_default_dtype():
    assert default_dtype("cpu") == torch.float32
    assert default_dtype("cuda") == torch.float16
    assert default_dtype("cuda:1") == torch.float16
    assert default_dtype("mps") == torch.float16
    assert default_dtype("mps", half_on_mps=False) == torch.float32
    assert default_dtype("cpu", prefer_bf16=True, half_on_mps=False) == torch.float32
    with pytest.raises(ValueError, match="resolved device"):
        default_dtype("auto")


def test_dtype_name_and_out_of_memory():
    assert dtype_name(torch.bfloat16) == "bfloat16"
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
