"""Bounded upload decoding, the JSON guard, owner-only files and the storage quota, in process
(the server-process replays are tests/api/test_hardening_inputs.py)."""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session

from imageforge.api.core.config import Settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.images import ImageRefused, decode_bounded
from imageforge.api.core.json_guard import encodable
from imageforge.api.models.generation import Generation
from imageforge.api.services import quota
from imageforge.tools.storage import atomic_copy, save_png
from tests.api.support import add_user, make_settings

FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


def _file(tmp_path: Path, image: Image.Image, fmt: str, **save: object) -> Path:
    path = tmp_path / f"upload.{fmt.lower()}"
    image.save(path, format=fmt, **save)
    return path


# Decoding ----------------------------------------------------------------------------------
def test_large_images_are_reduced_to_the_long_edge(tmp_path: Path) -> None:
    png = _file(tmp_path, Image.new("RGB", (3000, 1500), (10, 20, 30)), "PNG")
    out = decode_bounded(png, formats=FORMATS, max_pixels=16_777_216, max_side=1024)
    assert out.size == (1024, 512) and out.mode == "RGB" and out.getpixel((5, 5)) == (10, 20, 30)
    small = _file(tmp_path, Image.new("RGB", (300, 200)), "PNG")
    assert decode_bounded(small, formats=FORMATS, max_pixels=16_777_216, max_side=1024).size == (300, 200)


def test_a_jpeg_is_decoded_at_a_reduced_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jpeg = _file(tmp_path, Image.new("RGB", (4000, 2000), (200, 40, 40)), "JPEG", quality=90)
    loaded: list[tuple[int, int]] = []
    real_load = Image.Image.load

    def spy(self: Image.Image) -> object:
        result = real_load(self)
        loaded.append(self.size)
        return result

    monkeypatch.setattr(Image.Image, "load", spy)
    out = decode_bounded(jpeg, formats=FORMATS, max_pixels=16_777_216, max_side=1000)
    assert out.size == (1000, 500)
    assert loaded and loaded[0] == (1000, 500)  # the DCT scaled by 1/4 while decoding: never 8 MP in memory


def test_orientation_and_transparency_survive_the_reduction(tmp_path: Path) -> None:
    image = Image.new("RGBA", (400, 200), (0, 0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "portrait.png"
    image.save(path, format="PNG", exif=exif)
    out = decode_bounded(path, formats=FORMATS, max_pixels=10**6, max_side=100)
    assert out.size == (50, 100)  # upright, then within the long edge
    assert out.getpixel((10, 10)) == (255, 255, 255)  # transparent over white, not black


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((200, 200), 60).save(buffer, format="PNG")
    return buffer.getvalue()[:2000]  # a valid header, then the data stops


_TRUNCATED = _truncated_png()


@pytest.mark.parametrize(
    ("content", "kind", "words"),
    [
        (b"not an image at all", "invalid", "not an image"),
        (_TRUNCATED, "invalid", "truncated or corrupt"),
    ],
)
def test_refusals_name_neither_the_file_nor_pillow(tmp_path: Path, content: bytes, kind: str, words: str) -> None:
    path = tmp_path / "secret-server-path.bin"
    path.write_bytes(content)
    with pytest.raises(ImageRefused) as refused:
        decode_bounded(path, formats=FORMATS, max_pixels=10**6, max_side=100)
    assert refused.value.kind == kind and words in str(refused.value)
    assert "secret-server-path" not in str(refused.value)


def test_the_pixel_limit_and_the_format_come_from_the_header(tmp_path: Path) -> None:
    bomb = _file(tmp_path, Image.new("1", (5000, 5000)), "PNG")
    with pytest.raises(ImageRefused, match="5000x5000 = 25000000 pixels") as refused:
        decode_bounded(bomb, formats=FORMATS, max_pixels=4096 * 4096, max_side=2048)
    assert refused.value.kind == "too_large"
    gif = _file(tmp_path, Image.new("P", (10, 10)), "GIF")
    with pytest.raises(ImageRefused, match="got GIF") as refused:
        decode_bounded(gif, formats=FORMATS, max_pixels=10**6, max_side=2048)
    assert refused.value.kind == "unsupported"


# Validation answers that always encode ------------------------------------------------------
def test_encodable_makes_nan_and_surrogates_printable() -> None:
    value = {"input": [math.nan, math.inf, -math.inf, "a\ud800b"], "\udfff": 1.5}
    assert encodable(value) == {"input": ["NaN", "Infinity", "-Infinity", "a\\ud800b"], "\\udfff": 1.5}


def test_json_bodies_with_nan_or_surrogates_are_a_422(client: TestClient, alice: dict[str, str]) -> None:
    for body in (
        '{"prompt": "a", "target_duration": NaN}',
        '{"prompt": "\\ud800"}',
        '{"prompt": "a", "x": [Infinity]}',
    ):
        response = client.post("/api/generate", content=body, headers={**alice, "content-type": "application/json"})
        assert response.status_code == 422, response.text
    ok = '{"prompt": "caf\\u00e9 \\ud83d\\ude00", "num_scenes": 1}'  # a valid surrogate pair is fine
    response = client.post("/api/generate", content=ok, headers={**alice, "content-type": "application/json"})
    assert response.status_code == 202, response.text


# Owner-only files ---------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_file_is_created_owner_only_and_an_old_one_is_tightened(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = create_db_engine(settings)
    init_db(engine)
    engine.dispose()
    database = settings.data_dir / "imageforge.db"
    assert _mode(settings.data_dir) == 0o700 and _mode(database) == 0o600
    os.chmod(database, 0o644)  # as earlier versions left it
    create_db_engine(settings).dispose()
    assert _mode(database) == 0o600


def test_written_files_and_every_folder_they_need_are_owner_only(tmp_path: Path) -> None:
    target = save_png(Image.new("RGB", (4, 4)), tmp_path / "a" / "b" / "c" / "image.png")
    copy = atomic_copy(target, tmp_path / "a" / "d" / "copy.png")
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c", tmp_path / "a" / "d"):
        assert _mode(folder) == 0o700, folder
    assert _mode(target) == 0o600 and _mode(copy) == 0o600


# Storage quota ------------------------------------------------------------------------------
def _settings(tmp_path: Path, quota_bytes: int) -> Settings:
    return make_settings(tmp_path, user_storage_quota_bytes=quota_bytes, storage_quota_cache_s=0)


def test_usage_counts_trace_and_upload_bytes_once(client: TestClient, settings: Settings) -> None:
    settings = settings.model_copy(update={"storage_quota_cache_s": 0, "user_storage_quota_bytes": 3000})
    engine = client.app.state.engine  # type: ignore[attr-defined]
    add_user(client, "quota@example.com")
    with Session(engine) as session:
        from imageforge.api.crud import user as user_crud

        user = user_crud.get_user_by_email(session=session, email="quota@example.com")
        assert user is not None and user.id is not None
        session.add(Generation(id="g1", user_id=user.id, concept="c"))
        session.commit()
        user_id = user.id
    trace = settings.trace_root / "g1" / "scene_1"
    trace.mkdir(parents=True)
    (trace / "image_1.png").write_bytes(b"x" * 1000)
    os.link(trace / "image_1.png", trace / "image_copy.png")  # a published copy: the same bytes
    (settings.upload_dir / "g1").mkdir(parents=True)
    (settings.upload_dir / "g1" / "reference.png").write_bytes(b"y" * 500)
    assert quota.user_storage_bytes(engine, settings, user_id) == 1500
    quota.check_storage_quota(engine, settings, user_id)  # 1500 < 3000
    (trace / "image_2.png").write_bytes(b"z" * 1500)
    with pytest.raises(HTTPException) as full:
        quota.check_storage_quota(engine, settings, user_id)
    assert full.value.status_code == 413 and "quota" in str(full.value.detail)
    quota.check_storage_quota(engine, settings.model_copy(update={"user_storage_quota_bytes": 0}), user_id)  # off
