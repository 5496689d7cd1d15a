"""Uploads (type, corruption, size, decompression bombs), trace files and path traversal."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, func, select

from imageforge.api.main import create_app
from imageforge.api.models.generation import Generation
from tests.api.support import FakePipeline, add_user, make_settings, wait_for_status


def png_bytes(size: tuple[int, int] = (32, 24), colour: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def stored(client: TestClient) -> int:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(Generation)).one()


def upload(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    content_type: str = "image/png",
    **fields: str,
):
    form = {
        "prompt": "Luxury perfume advertisement",
        "num_scenes": "1",
        "num_variations": "2",
        **fields,
    }
    return client.post(
        "/api/generate-with-image",
        data=form,
        files={"image": ("ref.png", data, content_type)},
        headers=headers,
    )


def test_upload_becomes_scene_ones_reference(client: TestClient, alice: dict[str, str], settings) -> None:
    response = upload(client, alice, png_bytes())
    assert response.status_code == 202, response.text
    generation_id = response.json()["generation_id"]
    wait_for_status(client, generation_id, alice, {"completed"})
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        generation = session.get(Generation, generation_id)
        reference = Path(generation.request["reference_path"])
        assert generation.request["settings"]["num_variations"] == 2
    assert reference.is_file() and reference.parent.name == generation_id
    with Image.open(reference) as image:
        assert image.size == (32, 24) and image.format == "PNG"


def test_bad_uploads_are_4xx_naming_the_field_and_store_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_upload_bytes=20_000, max_image_pixels=100 * 100)
    with TestClient(create_app(settings, pipeline=FakePipeline(settings.trace_root))) as client:
        alice = add_user(client, "alice@example.com")
        big_noise = Image.frombytes("RGB", (120, 120), bytes(range(256)) * 168 + bytes(192))
        buffer = io.BytesIO()
        big_noise.save(buffer, format="BMP")
        cases = [
            (upload(client, alice, b"hello, world", "text/plain"), 415),
            (upload(client, alice, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100), 422),
            (upload(client, alice, png_bytes()[:60]), 422),
            (upload(client, alice, png_bytes((90, 90)), "image/gif"), 415),
            (upload(client, alice, buffer.getvalue(), "image/png"), 413),  # over 20 kB
            (upload(client, alice, bomb_png(60_000, 60_000)), 413),
            (upload(client, alice, png_bytes((150, 150))), 413),  # over 100 x 100 pixels
            (upload(client, alice, b""), 422),
        ]
        for response, expected in cases:
            assert response.status_code == expected, response.text
            assert "image" in str(response.json()["detail"])
            assert str(tmp_path) not in response.text  # no server paths in error messages
        fields = upload(client, alice, png_bytes(), num_variations="0")
        assert fields.status_code == 422 and "num_variations" in fields.text
        missing = client.post("/api/generate-with-image", data={"prompt": "x"}, headers=alice)
        assert missing.status_code == 422 and "image" in missing.text
        assert stored(client) == 0
        assert not any(settings.upload_dir.rglob("*"))


def test_body_limit_refuses_huge_requests_before_reading_them(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_upload_bytes=1024 * 1024)
    with TestClient(create_app(settings, pipeline=FakePipeline(settings.trace_root))) as client:
        alice = add_user(client, "alice@example.com")
        response = upload(client, alice, b"\x00" * (3 * 1024 * 1024))
        assert response.status_code == 413
        huge_json = b'{"prompt": "' + b"x" * (3 * 1024 * 1024) + b'"}'
        response = client.post(
            "/api/generate",
            content=huge_json,
            headers={**alice, "content-type": "application/json"},
        )
        assert response.status_code == 413
        assert stored(client) == 0


def test_trace_document_and_files_are_served_and_traversal_is_refused(
    client: TestClient, alice: dict[str, str], settings
) -> None:
    generation_id = client.post(
        "/api/generate", json={"prompt": "A lighthouse", "num_scenes": 2}, headers=alice
    ).json()["generation_id"]
    wait_for_status(client, generation_id, alice, {"completed"})
    trace = client.get(f"/api/generations/{generation_id}/trace", headers=alice)
    assert trace.status_code == 200
    body = trace.json()
    assert body["summary"]["status"] == "completed" and len(body["summary"]["scenes"]) == 2
    assert "summary.json" in body["files"] and "scene_1/image_1.png" in body["files"]
    for name in body["files"]:
        response = client.get(f"/api/generations/{generation_id}/trace/files/{name}", headers=alice)
        assert response.status_code == 200, name

    (settings.trace_root / "secret.txt").write_text("top secret")
    base = f"/api/generations/{generation_id}"
    for path in [
        "../secret.txt",
        "..%2Fsecret.txt",
        "%2E%2E/secret.txt",
        "scene_1/../../secret.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "scene_1/%00.png",
        "",
        ".",
    ]:
        for route in ("trace/files", "images"):
            response = client.get(f"{base}/{route}/{path}", headers=alice)
            assert response.status_code in (400, 404, 422), (route, path, response.status_code)
            assert b"top secret" not in response.content
    assert client.get(f"{base}/images/summary.json", headers=alice).status_code == 404
    assert client.get(f"{base}/trace/files/scene_9/image_1.png", headers=alice).status_code == 404


def test_trace_of_a_queued_job_is_404(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workers=1)
    pipeline = FakePipeline(settings.trace_root)
    pipeline.hold.clear()
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        alice = add_user(client, "alice@example.com")
        first = client.post("/api/generate", json={"prompt": "first"}, headers=alice).json()["generation_id"]
        wait_for_status(client, first, alice, {"running"})
        queued = client.post("/api/generate", json={"prompt": "second"}, headers=alice).json()["generation_id"]
        assert client.get(f"/api/generations/{queued}/trace", headers=alice).status_code == 404
        pipeline.hold.set()
