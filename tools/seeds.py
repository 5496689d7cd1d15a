"""Variation seeds derived from one base seed.

A storyboard records one base seed; every variation seed follows from it, the scene number,
the attempt and the variation's position, so a run can be replayed exactly and any single
image regenerated alone. The hash is BLAKE2b over a fixed text encoding rather than Python's
``hash()``, which is salted per process.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["MAX_SEED", "derive_seeds", "random_base_seed"]

#: Seeds stay within a signed 32-bit integer: every backend (torch, numpy, OpenAI) accepts that.
MAX_SEED = 2**31 - 1


def _hash_seed(text: str) -> int:
    digest = hashlib.blake2b(text.encode("ascii"), digest_size=8, person=b"imageforge-seed").digest()
    return int.from_bytes(digest, "big") & MAX_SEED


def derive_seeds(base_seed: int, scene_number: int, attempt: int, count: int) -> list[int]:
    """``count`` distinct seeds in [0, 2**31-1] for one attempt of one scene.

    Seed ``i`` depends only on (base_seed, scene_number, attempt, i), so asking for fewer
    variations gives a prefix of the longer list. A collision within the call (one chance
    in about 10**9 per pair) is resolved by re-hashing with a counter.
    """
    if not 0 <= base_seed <= MAX_SEED:
        raise ValueError(f"`base_seed` must be in [0, {MAX_SEED}], got {base_seed!r}.")
    if scene_number < 1:
        raise ValueError(f"`scene_number` must be >= 1, got {scene_number!r}.")
    if attempt < 1:
        raise ValueError(f"`attempt` must be >= 1, got {attempt!r}.")
    if count < 1:
        raise ValueError(f"`count` must be >= 1, got {count!r}.")
    seeds: list[int] = []
    taken: set[int] = set()
    for index in range(count):
        salt = 0
        seed = _hash_seed(f"{base_seed}:{scene_number}:{attempt}:{index}")
        while seed in taken:
            salt += 1
            seed = _hash_seed(f"{base_seed}:{scene_number}:{attempt}:{index}:{salt}")
        taken.add(seed)
        seeds.append(seed)
    return seeds


def random_base_seed() -> int:
    """A fresh base seed for a run that did not ask for one (recorded in the trace)."""
    return secrets.randbelow(MAX_SEED + 1)
