"""The model cache loads each key once, even under concurrent requests; ``resolve_weights``
finds weights on disk by the same rule as ``imageforge models list``."""

from __future__ import annotations

import threading

import pytest

from imageforge.scoring.pickscore import PICKSCORE_MODEL, PICKSCORE_PROCESSOR
from imageforge.tools import model_store
from imageforge.tools.model_cache import (
    LoadedModel,
    ModelCache,
    ModelNotAvailableError,
    resolve_weights,
)


def test_loads_once_and_lists_what_is_loaded():
    reg = ModelCache()
    calls = []

    def loader():
        calls.append(1)
        return object()

    first = reg.get("clip", loader, device="cpu", kind="clip")
    second = reg.get("clip", loader, device="cpu", kind="clip")
    assert first is second
    assert len(calls) == 1
    [info] = reg.loaded()
    assert isinstance(info, LoadedModel)
    assert (info.key, info.kind, info.device) == ("clip", "clip", "cpu")
    assert info.load_time_s >= 0


def test_two_threads_same_key_load_once():
    reg = ModelCache()
    started = threading.Event()
    release = threading.Event()
    calls = []

    def slow_loader():
        calls.append(1)
        started.set()
        assert release.wait(5)
        return object()

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(reg.get("m", slow_loader, device="cpu", kind="x")))
        for _ in range(2)
    ]
    threads[0].start()
    assert started.wait(5)
    threads[1].start()
    release.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1
    assert len(results) == 2 and results[0] is results[1]


def test_different_keys_load_in_parallel():
    """The loader of 'b' runs to completion while 'a' is still loading."""
    reg = ModelCache()
    a_started = threading.Event()
    b_done = threading.Event()

    def loader_a():
        a_started.set()
        # Only finishes if 'b' could load meanwhile: a global lock would deadlock here.
        assert b_done.wait(5), "loading 'b' was blocked by the load of 'a'"
        return "A"

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("a", reg.get("a", loader_a, device="cpu", kind="x")))
    t.start()
    assert a_started.wait(5)
    out["b"] = reg.get("b", lambda: "B", device="cuda:0", kind="y")
    b_done.set()
    t.join(5)
    assert out == {"a": "A", "b": "B"}
    assert sorted(m.key for m in reg.loaded()) == ["a", "b"]


def test_failed_load_is_not_cached_and_clear_forgets():
    reg = ModelCache()

    def broken():
        raise OSError("weights missing")

    with pytest.raises(OSError):
        reg.get("m", broken, device="cpu", kind="x")
    assert reg.loaded() == []
    assert reg.get("m", lambda: 1, device="cpu", kind="x") == 1
    reg.clear()
    assert reg.loaded() == []
    assert reg.get("m", lambda: 2, device="cpu", kind="x") == 2


def test_empty_key_is_rejected():
    with pytest.raises(ValueError, match="key"):
        ModelCache().get("", lambda: 1, device="cpu", kind="x")


def _fake_hub_cache(root, repo_id: str, files: list[str]):
    """The Hugging Face cache layout: models--org--name/{refs/main, snapshots/<rev>/...}."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    for name in files:
        (snapshot / name).write_text("{}")
    return snapshot


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_a_complete_cached_snapshot_is_resolved_locally(hub_cache):
    snapshot = _fake_hub_cache(hub_cache, "org/model", ["config.json", "model.safetensors"])
    assert resolve_weights("org/model") == (str(snapshot), True)
    assert model_store.is_available("org/model")


def test_an_interrupted_download_does_not_count(hub_cache):
    _fake_hub_cache(hub_cache, "org/partial", ["config.json"])
    assert not model_store.is_available("org/partial")
    with pytest.raises(ModelNotAvailableError, match="'org/partial' is not on disk"):
        resolve_weights("org/partial")


@pytest.mark.parametrize("processor_file", ["preprocessor_config.json", "processor_config.json"])
def test_processor_only_repos_need_processor_files(hub_cache, processor_file):
    snapshot = _fake_hub_cache(hub_cache, "org/proc", [processor_file, "tokenizer.json"])
    with pytest.raises(ModelNotAvailableError):
        resolve_weights("org/proc")
    assert resolve_weights("org/proc", kind="processor") == (str(snapshot), True)
    _fake_hub_cache(hub_cache, "org/tokenizer-only", ["tokenizer.json", "vocab.json"])
    with pytest.raises(ModelNotAvailableError):
        resolve_weights("org/tokenizer-only", kind="processor")


@pytest.mark.parametrize("processor_file", ["preprocessor_config.json", "processor_config.json"])
def test_models_list_and_the_loaders_agree_on_present(hub_cache, processor_file):
    """A set `imageforge models list` shows as present is one the scorer loaders take."""
    [pickscore] = [s for s in model_store.list_models() if s.name == "pickscore"]
    assert not pickscore.present
    model = _fake_hub_cache(hub_cache, PICKSCORE_MODEL, ["config.json", "model.safetensors"])
    processor = _fake_hub_cache(hub_cache, PICKSCORE_PROCESSOR, [processor_file, "tokenizer.json"])
    [pickscore] = [s for s in model_store.list_models() if s.name == "pickscore"]
    assert pickscore.present
    assert resolve_weights(PICKSCORE_MODEL) == (str(model), True)
    assert resolve_weights(PICKSCORE_PROCESSOR, kind="processor") == (str(processor), True)
    assert resolve_weights("pickscore") == (str(model), True)  # a catalogue name, as listed


def test_local_paths_and_downloads(hub_cache, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(ModelNotAvailableError, match="not on disk"):
        resolve_weights(str(folder))  # an empty folder is no model
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_text("{}")
    assert resolve_weights(str(folder)) == (str(folder), True)
    with pytest.raises(ModelNotAvailableError):
        resolve_weights("org/absent")
    with pytest.raises(ModelNotAvailableError):
        resolve_weights("not a valid repo id!")
    assert resolve_weights("org/absent", allow_download=True) == ("org/absent", False)
    with pytest.raises(ValueError, match="`name_or_path`"):
        resolve_weights("")
