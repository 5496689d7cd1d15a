"""`imageforge models pull` records the commit it fetched, `--revision` pins another one, and the
loaders' lookup reads the recorded commit, not whatever `main` points at (issue 10, finding 12).

A fake Hub on 127.0.0.1 serves one repository at two commits (`main` and the tag `v1`); no
network, no weights (the lookups judge layout, not tensors)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_hub import FakeHub
from huggingface_hub import HfApi
from typer.testing import CliRunner

from imageforge.api.cli.models import models_app
from imageforge.tools import model_store
from imageforge.tools.model_cache import resolve_weights

CLIP_L = "openai/clip-vit-large-patch14"
MAIN = "a" * 40
V1 = "b" * 40


def _files(tag: str) -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"model_type": "clip", "tag": tag}).encode(),
        "model.safetensors": f"weights of {tag}".encode(),
        "preprocessor_config.json": b"{}",
        "tokenizer.json": b"{}",
    }


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    fake = FakeHub(CLIP_L, {MAIN: _files("main"), V1: _files("v1")}, {"main": MAIN, "v1": V1})
    # What HfApi() and file URLs default to, read by huggingface_hub at import: the CLI builds its own client.
    monkeypatch.setattr(constants, "ENDPOINT", fake.endpoint)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    yield fake
    fake.close()


def _tag_of(folder: Path) -> str:
    return str(json.loads((folder / "config.json").read_text())["tag"])


def test_pull_records_the_commit_it_fetched_and_lookups_read_it(hub: FakeHub) -> None:
    api = HfApi(endpoint=hub.endpoint)
    [folder] = model_store.pull("clip-l", api=api)
    assert folder.name == MAIN
    assert model_store.recorded_revision(CLIP_L) == MAIN

    # --revision v1: fetched and pinned, although refs/main still names the other commit.
    plan = model_store.plan_pull("clip-l", api=api, revisions={CLIP_L: "v1"})
    assert plan.repos[0].revision == "v1"
    [folder] = model_store.pull("clip-l", plan=plan, api=api)
    assert folder.name == V1
    assert model_store.recorded_revision(CLIP_L) == V1
    assert model_store.local_snapshot(CLIP_L).name == MAIN  # what `main` points at locally...
    located = model_store.local_model_path("clip-l")
    assert located is not None and located.name == V1 and _tag_of(located) == "v1"  # ...is not what loads
    source, local_only = resolve_weights(CLIP_L)  # what the CLIP scorers' loaders pass to from_pretrained
    assert local_only and Path(source).name == V1 and _tag_of(Path(source)) == "v1"


def test_a_revision_for_a_repository_the_set_lacks_is_refused(hub: FakeHub) -> None:
    with pytest.raises(ValueError, match="not someone/else"):
        model_store.plan_pull("clip-l", api=HfApi(endpoint=hub.endpoint), revisions={"someone/else": "v1"})


def test_cli_pull_with_revision_pins_it(hub: FakeHub) -> None:
    result = CliRunner().invoke(models_app, ["pull", "clip-l", "--revision", "v1", "--yes"])
    assert result.exit_code == 0, result.output
    assert f"{CLIP_L} at v1" in result.output
    assert f"pinned {CLIP_L} at {V1}" in result.output
    assert json.loads(model_store.revisions_file().read_text()) == {CLIP_L: V1}


def test_cli_revision_errors_are_one_line_and_exit_2(hub: FakeHub) -> None:
    unknown = CliRunner().invoke(models_app, ["pull", "clip-l", "--revision", "no-such-tag", "--yes"])
    assert unknown.exit_code == 2, unknown.output
    assert "no such revision" in unknown.output and "Traceback" not in unknown.output
    ambiguous = CliRunner().invoke(models_app, ["pull", "pickscore", "--revision", "v1", "--yes"])
    assert ambiguous.exit_code == 2
    assert "REPO_ID=REV" in ambiguous.output
