"""The on-disk generation cache: keys, round trips and damaged entries."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imageforge.tools.generation_cache import (
    CachedImage,
    GenerationCache,
    cache_key,
    lookup_seeds,
    references_digest,
)
from imageforge.tools.schemas import ImageSize

SIZE = ImageSize(width=64, height=48)
BASE = {
    "prompt": "a red fox",
    "negative_prompt": "blurry",
    "seed": 7,
    "model": "stabilityai/sd-turbo",
    "size": SIZE,
    "reference_digest": "",
    "params": {"steps": 1, "guidance_scale": 0.0},
}


def _image(colour=(200, 30, 30)) -> Image.Image:
    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[..., :] = colour
    pixels[10:20, 10:30] = (10, 240, 90)
    return Image.fromarray(pixels)


def test_put_then_get_round_trips_pixels_and_metadata(tmp_path):
    cache = GenerationCache(tmp_path)
    key = cache_key(**BASE)
    assert cache.get(key) is None and key not in cache
    cache.put(key, _image(), {"seed": 7, "steps": 1})
    hit = cache.get(key)
    assert isinstance(hit, CachedImage)
    assert np.array_equal(np.asarray(hit.image), np.asarray(_image()))
    assert hit.metadata == {"seed": 7, "steps": 1}
    assert key in cache
    # Atomic writes leave no temporary files behind.
    assert sorted(p.suffix for p in (tmp_path / key[:2]).iterdir()) == [".json", ".png"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", "a blue fox"),
        ("negative_prompt", ""),
        ("seed", 8),
        ("model", "stabilityai/sdxl-turbo"),
        ("size", ImageSize(width=48, height=64)),
        ("reference_digest", "ab" * 32),
        ("params", {"steps": 2, "guidance_scale": 0.0}),
    ],
)
def test_every_input_changes_the_key(field, value):
    assert cache_key(**{**BASE, field: value}) != cache_key(**BASE)


def test_key_is_stable_and_ignores_param_order():
    reordered = {**BASE, "params": {"guidance_scale": 0.0, "steps": 1}}
    assert cache_key(**reordered) == cache_key(**BASE)
    assert len(cache_key(**BASE)) == 64


def test_reference_digest_follows_pixels_and_order():
    red, blue = _image((200, 30, 30)), _image((30, 30, 200))
    assert references_digest([]) == ""
    assert references_digest([red, blue]) != references_digest([blue, red])
    assert references_digest([red]) == references_digest([red.convert("RGBA").convert("RGB")])
    assert references_digest([red]) != references_digest([blue])


def test_damaged_entries_read_as_misses(tmp_path, caplog):
    cache = GenerationCache(tmp_path)
    key = cache_key(**BASE)
    png_path = cache.put(key, _image(), {"seed": 7})
    png_path.write_bytes(png_path.read_bytes()[:40])
    with caplog.at_level("WARNING"):
        assert cache.get(key) is None
    assert "unreadable" in caplog.text
    cache.put(key, _image(), {"seed": 7})
    png_path.with_suffix(".json").write_text("{not json", encoding="utf-8")
    assert cache.get(key) is None


def test_a_png_without_its_json_is_a_miss(tmp_path):
    cache = GenerationCache(tmp_path)
    key = cache_key(**BASE)
    png_path = cache.put(key, _image(), {})
    png_path.with_suffix(".json").unlink()
    assert cache.get(key) is None


def test_keys_that_are_not_digests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="`key` must be a lowercase hex SHA-256"):
        GenerationCache(tmp_path).get("../../etc/passwd")


def test_a_cache_that_cannot_write_does_not_fail(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    cache = GenerationCache(blocker)
    key = cache_key(**BASE)
    with caplog.at_level("WARNING"):
        assert cache.put(key, _image(), {}) is None
    assert "could not store" in caplog.text
    assert cache.get(key) is None


def test_lookup_seeds_finds_hits_and_stores_the_rest(tmp_path):
    cache = GenerationCache(tmp_path)
    fields = {k: v for k, v in BASE.items() if k != "seed"}
    cache.put(cache_key(**{**fields, "seed": 2}), _image(), {"seed": 2, "cache_hit": False})

    found = lookup_seeds(cache, [3, 2, 3, 1], **fields)
    assert list(found.keys) == [3, 2, 1]
    assert found.keys[1] == cache_key(**{**fields, "seed": 1})
    assert found.hits == 1 and found.pending == [3, 1]
    assert found.images[2].seed == 2 and found.images[2].metadata["cache_hit"] is True

    found.store(3, _image((0, 0, 255)), {"seed": 3, "cache_hit": False})
    assert found.pending == [1] and found.hits == 1
    again = lookup_seeds(cache, [3], **fields)
    assert again.hits == 1 and again.images[3].metadata == {"seed": 3, "cache_hit": True}
    assert np.array_equal(np.asarray(again.images[3].image), np.asarray(_image((0, 0, 255))))


def test_lookup_seeds_without_a_cache_finds_and_keeps_nothing():
    fields = {k: v for k, v in BASE.items() if k != "seed"}
    found = lookup_seeds(None, [5, 5], **fields)
    assert (found.hits, found.pending) == (0, [5])
    found.store(5, _image(), {"seed": 5})
    assert found.images[5].metadata == {"seed": 5} and found.pending == []
