"""Device and dtype choice, shared by the generators and the scorers."""

from __future__ import annotations

import pytest
import torch

from imageforge.tools.devices import (
    cuda_index,
    default_dtype,
    dtype_name,
    is_out_of_memory,
    native_bf16,
    resolve_device,
)


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


def test_bf16_only_where_the_chosen_gpu_has_it_natively():
    # cuda:0 an A100 (8.0), cuda:1 a T4 (7.5): torch's default is_bf16_supported() says yes
    # to both (emulation) and looks at the current device only.
    capabilities = {0: (8, 0), 1: (7, 5), 2: (9, 0), 3: (7, 0)}
    probe = capabilities.__getitem__
    assert native_bf16("cuda:0", capability=probe)
    assert not native_bf16("cuda:1", capability=probe)
    assert native_bf16("cuda:2", capability=probe)
    assert not native_bf16("cuda:3", capability=probe)
    assert not native_bf16("cpu", capability=probe)
    assert default_dtype("cuda:0", prefer_bf16=True, capability=probe) == torch.bfloat16
    assert default_dtype("cuda:1", prefer_bf16=True, capability=probe) == torch.float16
    assert default_dtype("cuda:2", prefer_bf16=True, capability=probe) == torch.bfloat16
    assert default_dtype("cuda:2", prefer_bf16=False, capability=probe) == torch.float16
    assert cuda_index("cuda:3") == 3
