"""Issue 10, findings 4, 5, 9, 10 and 11 replayed against a real server process (uvicorn on
127.0.0.1, offline backends): what used to give a 500, a world-readable file, a guessed number or
unbounded disk now gives the documented behaviour.

Finding 12 (`imageforge models pull` pins revisions) has no server side: tests/tools/
test_model_revisions.py replays it against a fake Hub. The memory figure of finding 4 is a
benchmark (benchmarks/bench_uploads.py, figures in benchmarks/README.md), not a timed test.
"""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.api.server import Server, wait_until

pytestmark = pytest.mark.integration  # every test starts a uvicorn process

SMALL = {"num_variations": 2, "max_enhancement_iterations": 1, "max_retries": 0, "resolution": 128}
FINAL = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    instance = Server(tmp_path_factory.mktemp("hardening"), {"IMAGEFORGE_MAX_JOBS_PER_USER": "20"})
    instance.start(timeout_s=180)  # a loaded 2-core machine needs ~50 s to import and start
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def alice(server: Server) -> dict[str, str]:
    return server.add_user("alice@example.com")


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60.0) as http:
        yield http


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (90, 120, 200) if mode == "RGB" else 1).save(buffer, format="PNG")
    return buffer.getvalue()


def _raw(client: httpx.Client, url: str, body: str, headers: dict[str, str]) -> httpx.Response:
    return client.post(url, content=body.encode("utf-8"), headers={**headers, "content-type": "application/json"})


# Finding 5: NaN, Infinity and lone surrogates ---------------------------------------------------
@pytest.mark.parametrize(
    ("url", "body", "where"),
    [
        ("/api/generate", '{"prompt": "coffee", "target_duration": NaN}', ["body", "target_duration"]),
        ("/api/generate", '{"prompt": "coffee", "settings": {"approval_threshold": Infinity}}', None),
        ("/api/generate", '{"prompt": "coffee \\ud800"}', ["body", "prompt"]),
        ("/api/presets", '{"name": "p", "settings": {"quality_threshold": -Infinity}}', None),
        ("/api/presets", '{"name": "\\udfff", "settings": {}}', ["body", "name"]),
        ("/api/v1/characters", '{"name": NaN}', ["body", "name"]),
        ("/api/v1/characters", '{"name": "Maya", "tags": ["a\\ud83d"]}', ["body", "tags", 0]),
        ("/api/assistant/messages", '{"message": "\\udc00 hello"}', ["body", "message"]),
        ("/api/assistant/messages", '{"message": "hi", "generation_id": NaN}', None),
    ],
)
def test_nan_infinity_and_lone_surrogates_are_a_422(
    client: httpx.Client, alice: dict[str, str], url: str, body: str, where: list[Any] | None
) -> None:
    response = _raw(client, url, body, alice)
    assert response.status_code == 422, response.text
    detail = json.loads(response.text, parse_constant=lambda name: pytest.fail(f"answer holds {name}"))["detail"]
    assert any(error["type"] in ("finite_number", "string_unicode") for error in detail)
    if where is not None:
        assert detail[0]["loc"] == where
    assert "not a JSON number" in detail[0]["msg"] or "surrogate" in detail[0]["msg"]


# Finding 10: strict types, and the assistant asks back ------------------------------------------
@pytest.mark.parametrize(
    "settings",
    [{"num_variations": "4"}, {"num_variations": True}, {"num_variations": 4.0}, {"strict": "yes"}, {"seed": "7"}],
)
def test_a_string_or_boolean_is_not_a_number(client: httpx.Client, alice: dict[str, str], settings: dict) -> None:
    response = client.post("/api/generate", json={"prompt": "coffee", "settings": settings}, headers=alice)
    assert response.status_code == 422, response.text
    [name] = settings
    assert response.json()["detail"][0]["loc"] == ["body", "settings", name]


def test_strict_types_elsewhere_and_numbers_still_pass(client: httpx.Client, alice: dict[str, str]) -> None:
    assert client.post("/api/generate", json={"prompt": "x", "num_scenes": "2"}, headers=alice).status_code == 422
    assert client.post("/api/presets", json={"name": 5, "settings": {}}, headers=alice).status_code == 422
    character = client.post("/api/v1/characters", json={"name": "Maya"}, headers=alice).json()
    smart = client.post(
        f"/api/v1/characters/{character['id']}/generate-smart-image",
        json={"prompt": "portrait", "numVariations": "2"},
        headers=alice,
    )
    assert smart.status_code == 422 and "numVariations" in smart.text
    # An integer still stands for a float, and the multipart form's text fields still convert.
    ok = client.post(
        "/api/generate",
        json={
            "prompt": "coffee",
            "num_scenes": 1,
            "target_duration": 5,
            "settings": {**SMALL, "approval_threshold": 90},
        },
        headers=alice,
    )
    assert ok.status_code == 202, ok.text
    form = client.post(
        "/api/generate-with-image",
        data={"prompt": "coffee", "num_scenes": "1", "num_variations": "2", "max_enhancement_iterations": "1"},
        files={"image": ("ref.png", png((64, 64)), "image/png")},
        headers=alice,
    )
    assert form.status_code == 202, form.text


def test_the_assistant_asks_back_instead_of_guessing(client: httpx.Client, alice: dict[str, str]) -> None:
    response = client.post("/api/assistant/messages", json={"message": "no more than -3 iterations"}, headers=alice)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "How many enhancement iterations" in answer["reply"] and "-3" in answer["reply"]
    assert answer["actions"] == []  # nothing changed
    detail = client.get(f"/api/assistant/conversations/{answer['conversation_id']}", headers=alice)
    assert detail.status_code == 200, detail.text
    assert detail.json()["settings"].get("max_enhancement_iterations") in (None, 4)  # not 3, not -3
    fine = client.post(
        "/api/assistant/messages",
        json={"message": "no more than 3 iterations", "conversation_id": answer["conversation_id"]},
        headers=alice,
    )
    assert fine.status_code == 200 and "3" in fine.json()["reply"]


# Finding 4: uploads are checked from the header and decoded reduced ------------------------------
def test_an_upload_over_the_pixel_limit_is_refused_from_its_header(client: httpx.Client, alice: dict[str, str]) -> None:
    bomb = png((6300, 6300), mode="1")  # the finding's file: a few KB that unpack to 40 megapixels
    assert len(bomb) < 200_000
    response = client.post(
        "/api/generate-with-image",
        data={"prompt": "coffee"},
        files={"image": ("big.png", bomb, "image/png")},
        headers=alice,
    )
    assert response.status_code == 413, response.text
    message = response.json()["detail"][0]["msg"]
    assert "6300x6300" in message and str(4096 * 4096) in message


def test_a_near_limit_upload_is_kept_reduced_and_owner_only(
    client: httpx.Client, alice: dict[str, str], server: Server
) -> None:
    response = client.post(
        "/api/generate-with-image",
        data={"prompt": "coffee", "num_scenes": "1", "num_variations": "2", "max_enhancement_iterations": "1"},
        files={"image": ("near.png", png((4000, 4000)), "image/png")},
        headers=alice,
    )
    assert response.status_code == 202, response.text
    generation_id = response.json()["generation_id"]
    reference = server.root / "data" / "uploads" / generation_id / "reference.png"
    with Image.open(reference) as stored:
        assert stored.size == (2048, 2048)  # IMAGEFORGE_UPLOAD_MAX_SIDE
    wait_until(client, f"/api/generations/{generation_id}", alice, lambda d: d["status"] in FINAL)
    # Finding 9, for uploads and this run's trace: folders 0700, files 0600.
    _assert_owner_only(reference.parent)
    _assert_owner_only(server.root / "traces" / generation_id)


# Finding 9: owner-only files ---------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_owner_only(folder: Path) -> None:
    assert folder.is_dir()
    assert _mode(folder) == 0o700, (folder, oct(_mode(folder)))
    entries = list(folder.rglob("*"))
    assert entries
    for path in entries:
        if path.is_symlink():
            continue
        expected = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == expected, (path, oct(_mode(path)))


def test_the_database_and_the_data_folder_are_owner_only(server: Server, alice: dict[str, str]) -> None:
    data = server.root / "data"
    assert _mode(data) == 0o700
    database = data / "imageforge.db"
    assert _mode(database) == 0o600
    for sidecar in (data / "imageforge.db-wal", data / "imageforge.db-shm"):
        if sidecar.exists():
            assert _mode(sidecar) == 0o600, sidecar
    checkpoints = [path for path in data.glob("checkpoints*") if path.is_file()]
    assert checkpoints and all(_mode(path) == 0o600 for path in checkpoints), checkpoints  # prompts, settings
    for folder in (server.root / "traces", server.root / "uploads"):
        if folder.exists():
            assert _mode(folder) == 0o700, folder


# Finding 11: a per-user storage quota ------------------------------------------------------------
def test_a_user_over_the_storage_quota_gets_a_413_and_others_do_not(tmp_path: Path) -> None:
    server = Server(tmp_path, {"IMAGEFORGE_USER_STORAGE_QUOTA_BYTES": "100", "IMAGEFORGE_STORAGE_QUOTA_CACHE_S": "0"})
    server.start(timeout_s=180)
    try:
        carol, dave = server.add_user("carol@example.com"), server.add_user("dave@example.com")
        with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
            character = client.post("/api/v1/characters", json={"name": "Maya"}, headers=carol).json()
            url = f"/api/v1/characters/{character['id']}/references"
            form = {"kind": "master", "angle": "front"}
            first = client.post(url, data=form, files={"image": ("a.png", png((64, 64)), "image/png")}, headers=carol)
            assert first.status_code == 201, first.text  # under the quota: stored (a few hundred bytes)
            second = client.post(url, data=form, files={"image": ("b.png", png((64, 64)), "image/png")}, headers=carol)
            assert second.status_code == 413, second.text
            assert "storage quota is used up" in second.json()["detail"]
            generate = client.post("/api/generate", json={"prompt": "coffee", "settings": SMALL}, headers=carol)
            assert generate.status_code == 413 and "quota" in generate.json()["detail"]
            other = client.post(
                "/api/generate", json={"prompt": "coffee", "num_scenes": 1, "settings": SMALL}, headers=dave
            )
            assert other.status_code == 202, other.text
    finally:
        server.stop()
