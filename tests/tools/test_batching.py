"""The out-of-memory batch policy and the per-device lock (issue 9, "a worker owns its device")."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from imageforge.scoring.consistency import HistogramConsistencyScorer
from imageforge.scoring.factory import ScorerSet
from imageforge.scoring.technical import TechnicalQualityScorer
from imageforge.tools.batching import AdaptiveBatch, OutOfMemoryAtOneError, run_adaptive
from imageforge.tools.devices import device_lock


def _oom_above(limit: int, calls: list[int]):
    def call(chunk):
        calls.append(len(chunk))
        if len(chunk) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return [item * 10 for item in chunk]

    return call


def test_out_of_memory_halves_the_chunk_and_keeps_every_result_in_order():
    calls: list[int] = []
    batch = AdaptiveBatch()
    assert run_adaptive(_oom_above(2, calls), [1, 2, 3, 4, 5, 6, 7, 8], batch) == [10, 20, 30, 40, 50, 60, 70, 80]
    assert calls == [8, 4, 2, 2, 2, 2]
    assert batch.limit == 4  # four batches fitted at 2: one step back up for the next call


def test_the_limit_recovers_after_enough_batches_fit():
    batch = AdaptiveBatch(recover_after=2)
    assert batch.shrink(8) == 4
    batch.succeeded(4)
    assert batch.limit == 4
    batch.succeeded(4)
    assert batch.limit == 8  # two successes at the limit: one step back up
    batch.succeeded(8)
    batch.succeeded(8)
    assert batch.limit == 16
    batch.succeeded(2)  # smaller batches say nothing about the limit
    assert batch.limit == 16


def test_the_limit_is_lifted_at_the_ceiling():
    batch = AdaptiveBatch(ceiling=4, recover_after=1)
    assert batch.size(10) == 4
    assert batch.shrink(4) == 2
    assert batch.size(10) == 2
    batch.succeeded(2)
    assert batch.limit is None and batch.size(10) == 4


def test_a_failure_resets_the_recovery_count():
    batch = AdaptiveBatch(recover_after=2)
    batch.shrink(8)
    batch.succeeded(4)
    batch.shrink(4)
    batch.succeeded(2)
    assert batch.limit == 2


def test_out_of_memory_with_one_item_is_an_error_and_other_errors_pass_through():
    with pytest.raises(OutOfMemoryAtOneError, match="batch of one"):
        run_adaptive(_oom_above(0, []), [1, 2], AdaptiveBatch())

    def broken(chunk):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        run_adaptive(broken, [1, 2], AdaptiveBatch())


def test_device_lock_is_one_per_device():
    assert device_lock("cuda") is device_lock("cuda:0")
    assert device_lock("cuda:1") is not device_lock("cuda:0")
    assert device_lock("cpu") is device_lock("cpu")


def test_device_calls_from_two_threads_never_overlap():
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def model_call() -> None:
        nonlocal inside, overlaps
        for _ in range(20):
            with device_lock("cuda:3"):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=model_call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0


class _OomAbove(TechnicalQualityScorer):
    """The stand-in scorer, out of memory on chunks above ``limit`` images."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.calls: list[int] = []

    def score(self, images, prompt):
        self.calls.append(len(images))
        if len(images) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return super().score(images, prompt)


def test_a_scorer_out_of_memory_retries_smaller_instead_of_dropping_out(tiny_images):
    flaky = _OomAbove(limit=1)
    scorers = ScorerSet(scorers=[flaky], consistency=HistogramConsistencyScorer())
    expected = TechnicalQualityScorer().score(tiny_images, "a lighthouse")
    assert scorers.score(flaky, tiny_images, "a lighthouse") == pytest.approx(expected)
    assert flaky.calls == [4, 2, 1, 1, 1, 1]
    # Four fits at one lifted the limit to two: the next round tries two, then one again.
    flaky.calls.clear()
    assert len(scorers.score(flaky, tiny_images[:3], "a lighthouse")) == 3
    assert flaky.calls == [2, 1, 1, 1]


@pytest.fixture
def tiny_images():
    from PIL import Image

    return [Image.new("RGB", (16, 16), (40 * i, 90, 200 - 30 * i)) for i in range(4)]
