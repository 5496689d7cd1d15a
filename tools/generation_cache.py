"""Seed 002's generation cache: one PNG and its metadata per (prompt, seed, model, ...) on disk.

A retried scene, a resumed job or a re-run storyboard asks again for images it already made;
a real model takes seconds to minutes per image, a cache lookup a millisecond. The key is a
SHA-256 over everything that decides the pixels: prompt, negative prompt, seed, model, size,
the reference images' pixels and the backend's own knobs (steps, guidance, strength), so a
change to any of them is a miss, never a stale image. Entries are written atomically (PNG
first, then the JSON that marks the entry complete); a damaged entry reads as a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from imageforge.tools.schemas import GeneratedImage, ImageSize
from imageforge.tools.storage import InvalidImageError, atomic_write_bytes, image_digest, load_image, save_png

__all__ = [
    "CachedImage",
    "GenerationCache",
    "SeedLookup",
    "cache_key",
    "lookup_seeds",
    "references_digest",
]

logger = logging.getLogger(__name__)

_KEY_VERSION = 1


def references_digest(references: Sequence[Image.Image]) -> str:
    """One digest for an ordered list of reference images ("" when there are none)."""
    if not references:
        return ""
    digest = hashlib.sha256()
    for image in references:
        digest.update(image_digest(image).encode("ascii"))
    return digest.hexdigest()


def cache_key(
    *,
    prompt: str,
    negative_prompt: str,
    seed: int,
    model: str,
    size: ImageSize,
    reference_digest: str,
    params: Mapping[str, Any] | None = None,
) -> str:
    """The hex SHA-256 naming one cached image. ``params`` are the backend's pixel-changing
    knobs; they must be JSON-serialisable."""
    payload = {
        "v": _KEY_VERSION,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "model": model,
        "size": str(size),
        "reference_digest": reference_digest,
        "params": dict(params or {}),
    }
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class CachedImage:
    image: Image.Image
    metadata: dict[str, Any]


class GenerationCache:
    """Images on disk under ``directory/<key[:2]>/<key>.png`` with ``<key>.json`` beside them.

    Safe to share between threads and processes: writers race only to replace a file with
    identical content, and readers never see half a file.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _paths(self, key: str) -> tuple[Path, Path]:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"`key` must be a lowercase hex SHA-256 from cache_key(), got {key!r}.")
        folder = self.directory / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def get(self, key: str) -> CachedImage | None:
        """The cached image and its metadata, or None on a miss (or a damaged entry)."""
        png_path, json_path = self._paths(key)
        if not json_path.is_file() or not png_path.is_file():
            return None
        try:
            metadata = json.loads(json_path.read_text(encoding="utf-8"))
            image = load_image(png_path)
        except (OSError, ValueError, InvalidImageError) as exc:
            logger.warning("Generation cache entry %s is unreadable (%s); treating it as a miss.", key, exc)
            return None
        if not isinstance(metadata, dict):
            logger.warning("Generation cache entry %s has metadata that is not an object; ignoring it.", key)
            return None
        return CachedImage(image=image, metadata=metadata)

    def put(self, key: str, image: Image.Image, metadata: Mapping[str, Any]) -> Path | None:
        """Store ``image`` with ``metadata`` (JSON-serialisable); returns the PNG's path.

        A cache that cannot write (disk full, read-only folder) logs a warning and returns
        None: losing a cache entry must never fail the generation that made the image.
        """
        png_path, json_path = self._paths(key)
        encoded = json.dumps(dict(metadata), sort_keys=True, default=str).encode("utf-8")
        try:
            save_png(image, png_path)
            atomic_write_bytes(json_path, encoded)
        except OSError as exc:
            logger.warning("Generation cache could not store %s in %s: %s", key, self.directory, exc)
            return None
        return png_path

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        png_path, json_path = self._paths(key)
        return png_path.is_file() and json_path.is_file()


@dataclass
class SeedLookup:
    """One ``generate`` call's seeds against the cache: each distinct seed's key, the images
    found so far, and ``store`` for the ones the backend then makes."""

    cache: GenerationCache | None
    keys: dict[int, str]
    images: dict[int, GeneratedImage]
    hits: int
    """Seeds served from the cache (``GenerationOutput.cache_hits``)."""

    @property
    def pending(self) -> list[int]:
        """The distinct seeds not found, in the order first asked for."""
        return [seed for seed in self.keys if seed not in self.images]

    def store(self, seed: int, image: Image.Image, metadata: dict[str, Any]) -> None:
        """Record a freshly made image for ``seed`` and write it to the cache (if any)."""
        self.images[seed] = GeneratedImage(image=image, seed=seed, metadata=metadata)
        if self.cache is not None:
            self.cache.put(self.keys[seed], image, metadata)


def lookup_seeds(
    cache: GenerationCache | None,
    seeds: Sequence[int],
    *,
    prompt: str,
    negative_prompt: str,
    model: str,
    size: ImageSize,
    reference_digest: str,
    params: Mapping[str, Any] | None = None,
) -> SeedLookup:
    """Look every distinct seed up under ``cache_key`` (the other arguments are its fields);
    a hit comes back with ``cache_hit: True`` added to its stored metadata. With no cache,
    nothing is found and nothing is stored."""
    keys = {
        seed: cache_key(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            model=model,
            size=size,
            reference_digest=reference_digest,
            params=params,
        )
        for seed in seeds
    }
    images: dict[int, GeneratedImage] = {}
    for seed, key in keys.items():
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            images[seed] = GeneratedImage(
                image=cached.image, seed=seed, metadata={**cached.metadata, "cache_hit": True}
            )
    return SeedLookup(cache=cache, keys=keys, images=images, hits=len(images))
