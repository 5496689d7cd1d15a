"""Seed 003's reference ranking and attempt strategy, as pure functions.

A scene's candidates are the user's image, character references (master and core
turnarounds) and images generated for earlier scenes. ``reference_features`` reads from the
scene's prompt the features references are matched on (shot group, subject angle, mood,
setting, keywords), ``rank_references`` scores every candidate with seed 003's bonuses plus
ImageForge's chain bonus, and ``attempt_references`` turns the ranking into the reference used
by each attempt. Nothing here opens a file.

Shot and angle words come from the shared cinematography vocabulary
(``imageforge.agents.vocabulary``, the one module of agents that tools may import), where each
shot type carries its seed-003 group and each angle the side of the subject it shows; so a
prompt's "wide angle" is a lens here too, not a wide shot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import cycle, islice
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from imageforge.agents.vocabulary import CameraAngle, ShotGroup, View, longest, named_shot, normalise
from imageforge.tools.schemas import ReferenceImage

__all__ = [
    "KIND_BONUS",
    "RankedReference",
    "ReferenceFeatures",
    "attempt_references",
    "classify_angle",
    "classify_shot",
    "extract_keywords",
    "find_phrase_spans",
    "find_phrases",
    "longest_match",
    "normalise_text",
    "rank_references",
    "reference_features",
]

ShotType = ShotGroup  # seed 003's coarse shot types, each vocabulary shot type's `group`
Angle = View  # seed 003's subject angles, each vocabulary camera angle's `view`
Mood = Literal["action", "calm", "dramatic", "neutral"]
Setting = Literal["outdoor", "indoor", "studio", "neutral"]

DEFAULT_SHOT: ShotType = "medium"
DEFAULT_ANGLE: Angle = "front"

# Mood and setting tables. Phrases are matched on whole words after normalisation (lower case,
# hyphens and underscores read as spaces), so "high-contrast" and "high contrast" agree; the
# value with the most hits wins, then the earlier row. Unmentioned, each field has a default.

# fmt: off
MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "action": (
        "action", "running", "jumping", "leaping", "dynamic", "motion", "sprinting", "chase",
        "fighting", "dancing", "splash", "mid air", "fast",
    ),
    "calm": ("calm", "serene", "peaceful", "relaxed", "tranquil", "quiet", "gentle", "cozy", "cosy", "soft"),
    "dramatic": (
        "dramatic", "intense", "moody", "high contrast", "chiaroscuro", "storm", "stormy",
        "epic", "dark", "shadowy",
    ),
}

SETTING_WORDS: dict[str, tuple[str, ...]] = {
    "outdoor": (
        "outdoor", "outdoors", "outside", "street", "forest", "beach", "park", "city", "mountain",
        "mountains", "field", "garden", "sky", "ocean", "desert", "rooftop", "countryside",
    ),
    "indoor": (
        "indoor", "indoors", "inside", "room", "kitchen", "office", "cafe", "café", "coffee shop",
        "home", "bedroom", "living room", "restaurant", "bar", "apartment", "window light",
    ),
    "studio": (
        "studio", "backdrop", "seamless", "white background", "plain background", "softbox",
        "product shot", "cyclorama",
    ),
}

_STOPWORDS_TEXT = """a an and are as at be but by for from has have in into is it its of on or over so that the
    their then there these this those to under up was were with without while who whose which
    very more most some any all each other than too can will just into onto out about above
    below behind between through during before after his her him she he they them our your
    you we i me my mine shot angle view light lighting camera image photo picture scene frame"""
# fmt: on
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
MAX_KEYWORDS = 20


def normalise_text(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, single spaces: how every table reads text
    (the vocabulary's reading, so positions here and there agree)."""
    return normalise(text)


def _pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)")


def longest_match(text: str, table: Mapping[str, Sequence[str]]) -> str | None:
    """The key of ``table`` whose phrase matches ``text`` longest (then earliest), or None.

    Matching is on whole words after normalisation, so tables elsewhere (the sketch
    generator's) read prompts the same way as the reference analysis does.
    """
    best: tuple[int, int, str] | None = None  # (-length, position, value)
    normalised = normalise_text(text)
    for value, phrases in table.items():
        for phrase in phrases:
            match = _pattern(normalise_text(phrase)).search(normalised)
            if match is None:
                continue
            key = (-len(match.group(0)), match.start(), value)
            if best is None or key[:2] < best[:2]:
                best = key
    return None if best is None else best[2]


def find_phrase_spans(text: str, phrases: Iterable[str]) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, phrase)`` matches in order of appearance, positions in
    the normalised text; where matches overlap the longer wins ("sky blue" hides "blue")."""
    normalised = normalise_text(text)
    hits: list[tuple[int, int, str]] = []
    for phrase in phrases:
        for match in _pattern(normalise_text(phrase)).finditer(normalised):
            hits.append((match.start(), -len(match.group(0)), phrase))
    spans: list[tuple[int, int, str]] = []
    end = -1
    for start, negative_length, phrase in sorted(hits):
        if start >= end:
            end = start - negative_length
            spans.append((start, end, phrase))
    return spans


def find_phrases(text: str, phrases: Iterable[str]) -> list[str]:
    """The ``phrases`` found in ``text`` in order of first appearance, each once."""
    found: list[str] = []
    for _, _, phrase in find_phrase_spans(text, phrases):
        if phrase not in found:
            found.append(phrase)
    return found


def _most_hits(text: str, table: dict[str, tuple[str, ...]], default: str) -> str:
    normalised = normalise_text(text)
    counts = {
        value: sum(len(_pattern(normalise_text(p)).findall(normalised)) for p in phrases)
        for value, phrases in table.items()
    }
    best = max(counts, key=lambda value: counts[value])  # max keeps the first row on ties
    return best if counts[best] > 0 else default


def classify_shot(text: str) -> ShotType | None:
    """Seed 003's shot group named in ``text`` (a prompt, or a reference's free-text shot type,
    which may be the group itself): the group of the shot type the longest phrase names, else
    of the shot a named lens implies ("macro"), else None."""
    normalised = normalise(text)
    group = next((g for g in get_args(ShotType) if normalise(g) == normalised), None)
    if group is not None:
        return group
    shot = named_shot(text)
    return None if shot is None else shot.group


def classify_angle(text: str) -> Angle | None:
    """Seed 003's subject angle named in ``text`` (or given as the angle itself), or None."""
    normalised = normalise(text)
    view = next((v for v in get_args(Angle) if normalise(v) == normalised), None)
    if view is not None:
        return view
    angle = longest(text, CameraAngle, lambda angle: angle.view is not None)
    return None if angle is None else angle.view


def extract_keywords(text: str, limit: int = MAX_KEYWORDS) -> list[str]:
    """Content words of ``text`` for reference matching: lower case, first occurrence order,
    at least three letters, stopwords and numbers dropped, at most ``limit``."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    seen: list[str] = []
    for word in words:
        if len(word) < 3 or word in STOPWORDS or word in seen:
            continue
        seen.append(word)
        if len(seen) == limit:
            break
    return seen


class ReferenceFeatures(BaseModel):
    """What a scene prompt says that references are ranked on (seed 003's prompt analysis)."""

    model_config = ConfigDict(frozen=True)

    shot_type: ShotType = DEFAULT_SHOT
    angle: Angle = DEFAULT_ANGLE
    mood: Mood = "neutral"
    setting: Setting = "neutral"
    keywords: list[str] = Field(default_factory=list)


def reference_features(prompt: str) -> ReferenceFeatures:
    """Read shot group, angle, mood, setting and keywords from ``prompt``.

    Unmentioned fields take their defaults: a medium shot from the front, neutral mood and
    setting. The tables are deliberately small and literal: the analysis only has to rank a
    handful of references, and a rule a user can read beats a guess they cannot.
    """
    return ReferenceFeatures(
        shot_type=classify_shot(prompt) or DEFAULT_SHOT,
        angle=classify_angle(prompt) or DEFAULT_ANGLE,
        mood=_most_hits(prompt, MOOD_WORDS, "neutral"),
        setting=_most_hits(prompt, SETTING_WORDS, "neutral"),
        keywords=extract_keywords(prompt),
    )


class RankedReference(BaseModel):
    """A candidate with its seed-003 relevance score and the bonuses that made it, in words."""

    model_config = ConfigDict(frozen=True)

    reference: ReferenceImage
    score: float
    reasons: list[str] = Field(default_factory=list)


#: Seed 003's base score per reference kind; a user image counts as the master reference.
KIND_BONUS: dict[str, float] = {"user": 10.0, "master": 10.0, "core": 8.0, "generated": 5.0}
KIND_PRIORITY: dict[str, int] = {"user": 0, "master": 1, "core": 2, "generated": 3}
KIND_LABEL: dict[str, str] = {
    "user": "user image (master)",
    "master": "master",
    "core": "core reference",
    "generated": "generated",
}
MASTER_KINDS = frozenset({"user", "master"})
QUALITY_BONUS = 5.0
CONSISTENCY_BONUS = 5.0
HIGH_SCORE = 80.0
SHOT_MATCH_BONUS = 5.0
ANGLE_MATCH_BONUS = 3.0
KEYWORD_BONUS = 1.0
MAX_KEYWORD_BONUS = 7.0
CHAIN_BONUS = 15.0


def _score(reference: ReferenceImage, features: ReferenceFeatures, chain_scene: int | None) -> RankedReference:
    score = KIND_BONUS[reference.kind]
    reasons = [f"{KIND_LABEL[reference.kind]} +{KIND_BONUS[reference.kind]:g}"]
    if chain_scene is not None and reference.kind == "generated" and reference.scene_number == chain_scene:
        score += CHAIN_BONUS
        reasons.append(f"previous scene's winner +{CHAIN_BONUS:g}")
    if reference.quality_score is not None and reference.quality_score >= HIGH_SCORE:
        score += QUALITY_BONUS
        reasons.append(f"quality {reference.quality_score:g} >= {HIGH_SCORE:g} +{QUALITY_BONUS:g}")
    if reference.consistency_score is not None and reference.consistency_score >= HIGH_SCORE:
        score += CONSISTENCY_BONUS
        reasons.append(f"consistency {reference.consistency_score:g} >= {HIGH_SCORE:g} +{CONSISTENCY_BONUS:g}")
    if reference.shot_type and classify_shot(reference.shot_type) == features.shot_type:
        score += SHOT_MATCH_BONUS
        reasons.append(f"shot type {features.shot_type} matches +{SHOT_MATCH_BONUS:g}")
    if reference.camera_angle and classify_angle(reference.camera_angle) == features.angle:
        score += ANGLE_MATCH_BONUS
        reasons.append(f"angle {features.angle} matches +{ANGLE_MATCH_BONUS:g}")
    wanted = {keyword.lower() for keyword in features.keywords}
    shared = sorted({keyword.lower() for keyword in reference.keywords} & wanted)
    if shared:
        bonus = min(MAX_KEYWORD_BONUS, KEYWORD_BONUS * len(shared))
        score += bonus
        reasons.append(f"{len(shared)} shared keyword{'s' if len(shared) > 1 else ''} ({', '.join(shared)}) +{bonus:g}")
    return RankedReference(reference=reference, score=score, reasons=reasons)


def rank_references(
    candidates: Sequence[ReferenceImage],
    features: ReferenceFeatures,
    *,
    chain_scene: int | None = None,
) -> list[RankedReference]:
    """Score and sort ``candidates`` for one scene, best first.

    Seed 003's scores: master or user +10, core +8, generated +5; +5 when quality_score >= 80;
    +5 when consistency_score >= 80; matching bonus: shot type +5, angle +3, +1 per shared
    keyword up to +7. ImageForge adds +15 for a generated reference from scene
    ``chain_scene`` (the previous scene's winner), which puts chaining ahead of a master
    reference with no other merit. A reference's free-text ``shot_type`` and
    ``camera_angle`` are read with the same tables as the prompt. Ties keep kind priority
    (user, master, core, generated), then id order.
    """
    ids = [candidate.id for candidate in candidates]
    duplicates = sorted({ref_id for ref_id in ids if ids.count(ref_id) > 1})
    if duplicates:
        raise ValueError(f"`candidates` must have distinct ids, got duplicates {duplicates!r}.")
    ranked = [_score(candidate, features, chain_scene) for candidate in candidates]
    return sorted(ranked, key=lambda r: (-r.score, KIND_PRIORITY[r.reference.kind], r.reference.id))


def attempt_references(ranked: Iterable[RankedReference], max_attempts: int) -> list[ReferenceImage | None]:
    """The reference for each attempt, seed 003's generation strategy.

    - attempt 1: the highest-ranked reference;
    - attempt 2: the master reference (the best-ranked of kind master or user) when it is
      not already attempt 1's; otherwise attempt 2 continues with the next rule;
    - attempts 3+: the references not used yet, in rank order; when they run out, all
      references again in rank order, cycling for as long as attempts remain.

    With no candidates every attempt runs without a reference: ``[None] * max_attempts``.
    """
    if max_attempts < 1:
        raise ValueError(f"`max_attempts` must be >= 1, got {max_attempts!r}.")
    references = [item.reference for item in ranked]
    if not references:
        return [None] * max_attempts
    first = references[0]
    order = [first]
    master = next((ref for ref in references if ref.kind in MASTER_KINDS), None)
    if master is not None and master.id != first.id:
        order.append(master)
    used = {ref.id for ref in order}
    order.extend(ref for ref in references if ref.id not in used)
    plan: list[ReferenceImage | None] = list(islice(order, max_attempts))
    plan.extend(islice(cycle(references), max_attempts - len(plan)))
    return plan
