"""Atomic writes and validated image reads."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imageforge.tools import storage
from imageforge.tools.storage import InvalidImageError, atomic_write_bytes, image_digest, load_image, save_png


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _noise(width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_atomic_write_creates_folders_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "file.txt"
    assert atomic_write_bytes(target, b"hello") == target
    assert target.read_bytes() == b"hello"
    atomic_write_bytes(target, b"world")
    assert target.read_bytes() == b"world"
    assert os.listdir(target.parent) == ["file.txt"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "scores.json"
    target.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["scores.json"]


def test_save_png_round_trip_and_same_bytes(tmp_path):
    image = _noise()
    path = save_png(image, tmp_path / "image_1.png")
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == image.size
    assert np.array_equal(np.asarray(loaded), np.asarray(image))
    again = save_png(image, tmp_path / "image_2.png")
    assert path.read_bytes() == again.read_bytes()


def test_missing_file(tmp_path):
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InvalidImageError):
        load_image(tmp_path)  # a folder is not an image either


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(tmp_path, fmt):
    buffer = io.BytesIO()
    _noise(200, 200).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        load_image(path)


def test_decompression_bomb_refused_from_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(100_000, 100_000))
    with pytest.raises(InvalidImageError, match="limit"):
        load_image(path)
    # Without our limit, Pillow's own decompression-bomb check still refuses it.
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(path, max_pixels=None)


def test_max_pixels_argument(tmp_path):
    path = save_png(_noise(100, 100), tmp_path / "big.png")
    assert load_image(path, max_pixels=10_000).size == (100, 100)
    with pytest.raises(InvalidImageError, match="10000 pixels"):
        load_image(path, max_pixels=9_999)
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(path, max_pixels=0)


def test_invalid_image_error_is_a_value_error():
    assert issubclass(InvalidImageError, ValueError)


def test_transparency_composited_over_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 255))
    loaded = load_image(save_png(image, tmp_path / "alpha.png"))
    assert loaded.getpixel((1, 1)) == (255, 255, 255)
    assert loaded.getpixel((0, 0)) == (0, 0, 255)


def test_exif_orientation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "phone.png"
    _noise(40, 30).save(path, exif=exif)
    assert load_image(path).size == (30, 40)


def test_image_digest():
    image = _noise()
    assert image_digest(image) == image_digest(image.copy())
    assert image_digest(image) == image_digest(image.convert("RGBA"))  # same RGB pixels
    assert image_digest(image) != image_digest(_noise(seed=1))
    # Same bytes, different shape: the size is part of the digest.
    row = Image.new("RGB", (2, 1), (9, 9, 9))
    column = Image.new("RGB", (1, 2), (9, 9, 9))
    assert row.tobytes() == column.tobytes()
    assert image_digest(row) != image_digest(column)
    assert len(image_digest(image)) == 64


def test_digest_survives_png_round_trip(tmp_path):
    image = _noise()
    assert image_digest(load_image(save_png(image, tmp_path / "x.png"))) == image_digest(image)


def test_images_just_written_are_read_back_without_decoding(tmp_path, monkeypatch):
    from PIL import Image

    from imageforge.tools import storage

    image = Image.new("RGB", (32, 24), (10, 200, 30))
    path = storage.save_png(image, tmp_path / "a.png")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded from disk")

    monkeypatch.setattr(storage.Image, "open", no_decoding)
    loaded = storage.load_image(path)
    assert loaded.tobytes() == image.tobytes()
    loaded.putpixel((0, 0), (0, 0, 0))  # callers get a copy, never the cached image
    assert storage.load_image(path).getpixel((0, 0)) == (10, 200, 30)


def test_a_file_replaced_behind_the_cache_is_decoded_again(tmp_path):
    import os

    from PIL import Image

    from imageforge.tools import storage

    path = storage.save_png(Image.new("RGB", (16, 16), (255, 0, 0)), tmp_path / "b.png")
    Image.new("RGB", (16, 16), (0, 0, 255)).save(tmp_path / "other.png")
    os.replace(tmp_path / "other.png", path)
    assert storage.load_image(path).getpixel((0, 0)) == (0, 0, 255)


def test_save_pngs_writes_every_image_in_order(tmp_path):
    from PIL import Image

    from imageforge.tools.storage import load_image, save_pngs

    items = [(Image.new("RGB", (8, 8), (i * 40, 0, 0)), tmp_path / f"{i}.png") for i in range(5)]
    paths = save_pngs(items)
    assert paths == [p for _, p in items]
    assert [load_image(p).getpixel((0, 0))[0] for p in paths] == [i * 40 for i in range(5)]
