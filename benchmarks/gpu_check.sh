#!/usr/bin/env bash
# GPU check (issue 11): the tiny-model tests marked `gpu` run on CUDA, then the tiny Stable
# Diffusion pipeline of the tests is timed on CUDA. The CUDA code paths this exercises: fp16 and
# bf16 loading (the chosen device's native bf16), one CPU generator per seed in a batched call,
# out-of-memory halving and memory release, the scorers in half precision.
#
# Needs only the repository and its venv: no network, no downloaded weights (every model is
# built from a config with random weights). Every step has its own time limit; the whole run
# stays under 5 minutes (about 2 on an idle GPU, most of it imports and pytest collection).
#
#   benchmarks/gpu_check.sh            # cuda (the current device)
#   benchmarks/gpu_check.sh cuda:1     # another GPU
#   PYTHON=/path/to/python benchmarks/gpu_check.sh
#
# Exit status: 0 when every step passed, 2 when torch sees no CUDA device, else the first
# failing step's status.
set -uo pipefail
cd "$(dirname "$0")/.."
device="${1:-cuda}"
python="${PYTHON:-.venv/bin/python}"
export IMAGEFORGE_TEST_DEVICE="$device"
export PYTHONPATH="tests${PYTHONPATH:+:$PYTHONPATH}"
status=0

echo "## GPU check on $device ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version --format=csv,noheader
fi

echo
echo "### 1. The device"
timeout 60 "$python" - "$device" <<'PY' || exit $?
import sys

import torch

from imageforge.tools.devices import cuda_index, default_dtype, native_bf16

device = sys.argv[1]
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, CUDA available: {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    print("No CUDA device: nothing to check on a GPU.")
    sys.exit(2)
index = cuda_index(device)
major, minor = torch.cuda.get_device_capability(index)
print(f"{device}: {torch.cuda.get_device_name(index)}, compute capability {major}.{minor}")
print(
    f"native bf16: {native_bf16(device)} (torch's is_bf16_supported(): {torch.cuda.is_bf16_supported()}, "
    f"without emulation: {torch.cuda.is_bf16_supported(including_emulation=False)})"
)
print(f"generators load in {default_dtype(device)}, bf16-trained families (FLUX, SD3, Flan-T5) in "
      f"{default_dtype(device, prefer_bf16=True)}")
PY

echo
echo "### 2. The tests marked gpu, on $device"
timeout 200 "$python" -m pytest -q -p no:cacheprovider -m gpu -rs --durations=5 || status=$?
[ "$status" -eq 0 ] || echo "(pytest exited with $status)"

echo
echo "### 3. Timing: the tiny Stable Diffusion pipeline on $device"
timeout 120 "$python" - "$device" <<'PY' || { rc=$?; [ "$status" -eq 0 ] && status=$rc; }
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from tiny_models import save_tiny_sd_pipeline

from imageforge.tools.devices import free_device_memory
from imageforge.tools.diffusers_generator import load_diffusers_generator
from imageforge.tools.schemas import ImageSize

device = sys.argv[1]
with tempfile.TemporaryDirectory(prefix="imageforge-gpu-check-") as work:
    folder = save_tiny_sd_pipeline(Path(work) / "tiny-sd")
    started = time.perf_counter()
    generator = load_diffusers_generator(str(folder), device=device, steps=4, guidance_scale=7.5)
    print(f"loaded in {time.perf_counter() - started:.2f} s, dtype {generator.dtype}, device {generator.device}")
    print()
    print("| frame | batch | median ms per call | ms per image | peak MiB |")
    print("|---|---|---|---|---|")
    seed = 0
    for edge in (64, 256, 512):
        size = ImageSize(width=edge, height=edge)
        for batch in (1, 4):
            times = []
            torch.cuda.reset_peak_memory_stats(device)
            for run in range(6):
                seeds = list(range(seed, seed + batch))
                seed += batch
                torch.cuda.synchronize(device)
                begin = time.perf_counter()
                output = generator.generate("a red fox in the snow", negative_prompt="blurry", seeds=seeds,
                                            references=[], size=size)
                torch.cuda.synchronize(device)
                if run > 0:  # the first call of a shape is a warm-up
                    times.append(time.perf_counter() - begin)
                assert [image.seed for image in output.images] == seeds
            peak = torch.cuda.max_memory_allocated(device) / 2**20
            median = statistics.median(times) * 1000
            print(f"| {edge}x{edge} | {batch} | {median:.1f} | {median / batch:.1f} | {peak:.0f} |")
    reference = output.images[0].image
    img2img = generator.generate("a red fox", negative_prompt="", seeds=[1], references=[reference], size=size)
    print(f"\nimage-to-image: mode {img2img.images[0].metadata['mode']}, strength applied "
          f"{img2img.images[0].metadata['strength']} (asked {img2img.images[0].metadata['requested_strength']})")
    del output, img2img, reference
    gc.collect()
    before = torch.cuda.memory_reserved(device)
    free_device_memory(device)
    print(f"free_device_memory: reserved {before / 2**20:.0f} -> {torch.cuda.memory_reserved(device) / 2**20:.0f} MiB")
PY

echo
echo "GPU check finished with status $status."
exit "$status"
