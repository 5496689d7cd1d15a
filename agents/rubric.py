"""The prompt engineer's rubric: what an image prompt contains, and what that is worth.

The heuristic prompt engineer scores with these functions, the LLM prompt engineer is shown
the same table in ``prompts/prompt_engineer.txt``, and the heuristic cinematographer reads
``missing_element_keys`` to know what to add next, so all three agree on what "better" means.

Every score is a sum of points for detected elements minus penalties for problems, clamped
to 0-100. Adding an element never lowers a score; only vague words, tag soup, conflicting
terms or an overlong prompt take points away. Detection is lexical (word lists and a few
patterns): cheap, deterministic and explainable in a critique.

=================  ============================================================  ======
Dimension          What earns points                                             Points
=================  ============================================================  ======
completeness       subject 15, action 10, setting 15, time of day 10,            100
                   shot type 10, any lighting (direction, source or kelvin) 10,
                   composition rule 10, palette (a named colour) 10, mood 10
specificity        lens focal length in mm 10, f-number 10, kelvin 10,           100
                   light angle in degrees 5, named colours 5 each (max 3),
                   materials/textures 5 each (max 3), subject detail (age,
                   hair, clothing; or a product finish) 10, concrete length
                   0.5 per content word (max 25);
                   minus 10 per vague word (max -30)
professionalism    three or more sentences 15 (two: 8), technical vocabulary     100
                   6 per category (shot, angle, lens, aperture, light
                   direction, kelvin, composition), photographic style 13,
                   production terms 5 each (max 2), 30+ words 10 (15+: 5),
                   stated mood 10; minus 10 per vague word, 8 per tag-soup
                   term ("8k", "masterpiece"), 15 per conflict, 10 when
                   longer than 220 words
cinematography     shot type 15, camera angle 15, lens 12, aperture or depth      100
                   of field 12, light direction 14, colour temperature 12,
                   composition rule 14, light source or quality 6;
                   minus 10 per conflict
brand_alignment    with markers: storyboard palette covered 30, brand keywords   100
                   covered 25, style 15, a recurring character 15, setting 15
                   (fractions of each list; fields the storyboard leaves empty
                   drop out and the rest is rescaled to 100); without
                   markers: two named colours 35, mood 35, style 30
=================  ============================================================  ======

Conflicts: morning or daytime with night, morning with evening, shallow with deep depth of
field, high-key with low-key, an overhead camera with a low one (top-down with low angle),
a shot that crops the subject to a detail (extreme or macro close-up) with a wide or
establishing one. Text in double quotes (a tagline) is copy, not description, and is not
checked for vague words.

Camera and light words (shot types, angles, lenses, depth of field, light direction and
source, composition) come from the shared vocabulary (``agents.vocabulary``), so the rubric
reads a prompt the way the cinematographer writes it and the sketch and reference ranking
read it: "wide angle" is a lens here as everywhere. The rubric reports an entry's name
("close-up" for "close up" or "closeup").
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from imageforge.agents.schemas import ConsistencyMarkers, DimensionScores
from imageforge.agents.vocabulary import (
    CameraAngle,
    Composition,
    DepthOfField,
    Lens,
    LightDirection,
    LightSource,
    Shot,
    Term,
    found,
    vocabulary,
)

__all__ = [
    "DIMENSIONS",
    "ELEMENT_LABELS",
    "TAG_SOUP",
    "VAGUE_WORDS",
    "ElementKey",
    "PromptAnalysis",
    "analyze_prompt",
    "missing_element_keys",
    "missing_elements",
    "score_prompt",
]

DIMENSIONS: tuple[str, ...] = (
    "completeness",
    "specificity",
    "professionalism",
    "cinematography",
    "brand_alignment",
)

ElementKey = Literal[
    "subject",
    "action",
    "setting",
    "time_of_day",
    "shot_type",
    "camera_angle",
    "lens",
    "aperture",
    "light_direction",
    "light_source",
    "color_temperature",
    "light_angle",
    "composition",
    "palette",
    "materials",
    "subject_detail",
    "mood",
    "style",
    "production",
    "marker_palette",
    "brand_keywords",
    "marker_style",
    "characters",
    "marker_setting",
]

#: How a missing element is named in a critique.
ELEMENT_LABELS: dict[str, str] = {
    "subject": "a named subject",
    "action": "what the subject is doing (an action)",
    "setting": "a concrete setting or location",
    "time_of_day": "time of day",
    "shot_type": "shot type (e.g. medium close-up)",
    "camera_angle": "camera angle (e.g. eye-level)",
    "lens": "lens focal length in mm",
    "aperture": "aperture f-number and depth of field",
    "light_direction": "light direction (e.g. from the left at 45 degrees)",
    "light_source": "light source or quality (e.g. soft window light)",
    "color_temperature": "colour temperature in kelvin",
    "light_angle": "light angle in degrees",
    "composition": "composition rule (e.g. rule of thirds)",
    "palette": "named colours",
    "materials": "materials and textures",
    "subject_detail": "subject detail (age, hair, clothing, or product finish)",
    "mood": "mood or atmosphere",
    "style": "photographic style",
    "production": "production notes (focus target, fill light, space for copy)",
    "marker_palette": "the storyboard palette",
    "brand_keywords": "the brand keywords",
    "marker_style": "the storyboard style",
    "characters": "the recurring character or product description",
    "marker_setting": "the storyboard setting",
}

# --- vocabulary -------------------------------------------------------------------------

# fmt: off

_STOPWORDS = frozenset(
    [
        "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "with", "from", "by",
        "into", "onto", "over", "under", "as", "is", "are", "be", "its", "it", "this", "that",
        "these", "those", "their", "his", "her", "our", "your", "my", "we", "you", "they", "he",
        "she", "them", "him", "while", "then", "than", "so", "very", "just", "also", "some", "any",
        "each", "every", "all", "both", "up", "down", "out", "off", "about", "across", "along",
        "around", "through", "behind", "beside", "between", "near", "next", "against", "per",
    ]
)

_TIME_OF_DAY = (
    "early morning", "late morning", "morning", "dawn", "sunrise", "daybreak", "midday", "noon",
    "afternoon", "late afternoon", "daytime", "golden hour", "sunset", "dusk", "twilight",
    "blue hour", "evening", "nighttime", "night", "midnight",
)
_MORNING = frozenset({"early morning", "late morning", "morning", "dawn", "sunrise", "daybreak"})
_DAY = frozenset({"midday", "noon", "afternoon", "late afternoon", "daytime"})
_EVENING = frozenset({"sunset", "dusk", "twilight", "blue hour", "evening"})
_NIGHT = frozenset({"nighttime", "night", "midnight"})

_COLOURS = (
    "red", "crimson", "burgundy", "maroon", "scarlet", "orange", "amber", "rust", "terracotta",
    "coral", "peach", "yellow", "mustard", "ochre", "gold", "champagne", "green", "emerald", "sage",
    "olive", "moss", "mint", "teal", "turquoise", "cyan", "blue", "navy", "cobalt", "azure",
    "indigo", "purple", "violet", "lavender", "plum", "magenta", "pink", "blush", "rose", "white",
    "ivory", "cream", "beige", "tan", "sand", "caramel", "brown", "chestnut", "chocolate", "mocha",
    "black", "charcoal", "graphite", "grey", "gray", "silver", "slate", "bronze", "copper",
)

_MATERIALS = (
    "ceramic", "porcelain", "stoneware", "wood", "wooden", "oak", "walnut", "maple", "teak",
    "bamboo", "marble", "granite", "concrete", "terrazzo", "stone", "brick", "linen", "cotton",
    "wool", "knit", "cashmere", "silk", "satin", "velvet", "leather", "suede", "denim", "canvas",
    "glass", "crystal", "steel", "aluminium", "aluminum", "chrome", "brass", "metal",
    "carbon fibre", "carbon fiber", "rubber", "mesh", "paper", "cardboard", "rattan", "wicker",
    "clay", "asphalt", "grain", "weave", "condensation", "steam", "droplets", "patina", "foam",
    "crema", "velvet", "moss", "bark", "sand",
)

_SUBJECT_DETAIL_WORDS = (
    "hair", "eyes", "wearing", "dressed in", "beard", "freckles", "skin", "sweater", "shirt",
    "jacket", "dress", "apron", "hoodie", "coat", "tee", "robe", "matte", "glossy", "polished",
    "brushed", "hand-thrown", "frosted", "weathered", "embossed", "engraved", "hand-stitched",
)
_AGE_PATTERNS = (
    r"\b\d{1,2}[- ]years?[- ]old\b",
    r"\b\d{1,2}-year-old\b",
    r"\bin (?:his|her|their) (?:early |mid-|mid |late )?"
    r"(?:teens|twenties|thirties|forties|fifties|sixties|seventies)\b",
)

_MOOD = (
    "mood", "atmosphere", "inviting", "cozy", "cosy", "calm", "serene", "tranquil", "peaceful",
    "intimate", "energetic", "dynamic", "dramatic", "moody", "mysterious", "joyful", "playful",
    "nostalgic", "luxurious", "refined", "elegant", "confident", "optimistic", "bold", "sleek",
    "powerful", "contemplative", "focused", "determined", "convivial", "romantic", "melancholic",
    "uplifting", "hopeful", "expansive", "relaxed",
)

_STYLE = (
    "photography", "photograph", "photo", "editorial", "commercial", "cinematic", "film still",
    "documentary", "still life", "lifestyle", "photorealistic", "analog film", "35mm film",
    "illustration", "watercolor", "watercolour", "oil painting", "3d render", "anime",
)

_PRODUCTION = (
    "sharp focus", "focus on", "catchlight", "catchlights", "bounce fill", "fill light",
    "key light", "negative space for", "space for the tagline", "clean background",
    "seamless backdrop", "colour grade", "color grade", "graded", "styled", "hair light",
)

_SETTING = (
    "kitchen", "café", "cafe", "coffee shop", "restaurant", "bar", "bakery", "diner", "studio",
    "office", "workspace", "desk", "counter", "table", "living room", "bedroom", "bathroom",
    "vanity", "apartment", "loft", "home", "interior", "lobby", "boutique", "shop", "store",
    "gallery", "workshop", "warehouse", "factory", "garage", "gym", "street", "alley", "city",
    "skyline", "rooftop", "park", "garden", "forest", "woods", "trail", "mountain", "hill",
    "valley", "lake", "river", "beach", "coast", "ocean", "sea", "desert", "field", "meadow",
    "road", "highway", "bridge", "station", "market", "terrace", "balcony", "patio", "backdrop",
    "stage", "showroom", "track", "court",
)

_ACTION_VERBS = (
    "holds", "holding", "pours", "sips", "reaches", "walks", "runs", "smiles", "looks", "stands",
    "sits", "opens", "lifts", "takes", "wraps", "drinks", "eats", "laughs", "rests", "leans",
    "turns", "glances", "places", "hands", "grinds", "steams", "rises", "drives", "jumps", "dances",
    "sprints", "types", "reads", "writes", "works", "cooks", "stirs", "spins", "glides", "waits",
    "sits", "poses", "unboxes", "sprays", "applies",
)
_NOT_ACTIONS = frozenset(
    [
        "morning", "evening", "lighting", "setting", "ceiling", "building", "clothing", "ring",
        "king", "thing", "things", "something", "nothing", "everything", "string", "spring", "wing",
        "sling", "awning", "framing", "styling", "grading", "painting", "during", "bring", "icing",
        "frosting", "seasoning", "pudding", "wedding", "amazing", "stunning", "interesting",
        "charming", "ongoing", "upcoming", "outstanding", "following", "matching",
    ]
)

VAGUE_WORDS: tuple[str, ...] = (
    "nice", "beautiful", "beautifully", "good", "great", "amazing", "awesome", "stunning", "lovely",
    "perfect", "gorgeous", "wonderful", "fantastic", "incredible", "epic", "pretty", "cute",
    "fancy", "interesting", "stuff", "thing", "things", "something", "very", "really",
)
TAG_SOUP: tuple[str, ...] = (
    "masterpiece", "best quality", "high quality", "ultra detailed", "highly detailed", "8k", "4k",
    "uhd", "trending on artstation", "award winning", "octane render", "unreal engine",
    "hyperrealistic", "hyper-realistic", "ultra realistic", "ultra-realistic", "intricate details",
)

# fmt: on

_WORD = re.compile(r"[a-z0-9][a-z0-9'/.-]*")
_LENS_MM = re.compile(r"(?<![a-z0-9.])(\d{2,3})\s?mm\b")
_F_NUMBER = re.compile(r"(?<![a-z0-9])f/\s?(\d{1,2}(?:\.\d)?)")
_KELVIN = re.compile(r"(?<![a-z0-9])(\d{4,5})\s?k\b")
_DEGREES = re.compile(r"(?<![a-z0-9])\d{1,3}(?:\s?|-)(?:degrees?|°)")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")
#: A shot at least this large (subject height / frame height) shows only a detail of it.
_DETAIL_SCALE = 1.25
_TECHNICAL_NOUNS = (
    "shot", "angle", "lens", "light", "lighting", "aperture", "camera", "temperature", "composition",
    "palette", "colour", "color", "degrees",
)  # fmt: skip


@cache
def _technical_words() -> frozenset[str]:
    """Single words of camera, light and style vocabulary: never a subject, never an action."""
    phrases = [p for term in vocabulary().terms for p in term.phrases]
    groups = (phrases, _STYLE, _TIME_OF_DAY, _MOOD, _TECHNICAL_NOUNS)
    return frozenset(w for group in groups for term in group for w in re.findall(r"[a-z']+", term))


@cache
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation, longest terms first, tolerant of hyphen/space variants."""
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        escaped = re.escape(term)
        escaped = escaped.replace(r"\-", "[ -]?").replace(r"\ ", "[ -]")
        parts.append(escaped)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])")


_SEPARATORS = str.maketrans("", "", " -")


@cache
def _canonical_terms(terms: tuple[str, ...]) -> dict[str, str]:
    """Spelling without spaces or hyphens -> the term as listed (the first listed wins)."""
    table: dict[str, str] = {}
    for term in terms:
        table.setdefault(term.translate(_SEPARATORS), term)
    return table


def _canonical(found: str, terms: tuple[str, ...]) -> str:
    return _canonical_terms(terms).get(found.translate(_SEPARATORS), found)


def _find(text: str, terms: tuple[str, ...]) -> list[str]:
    """Distinct terms found, in order of appearance; a longer term hides the shorter inside it."""
    seen: list[str] = []
    for match in _pattern(terms).finditer(text):
        term = _canonical(match.group(0), terms)
        if term not in seen:
            seen.append(term)
    return seen


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("–", "-").replace("—", "-")
    return re.sub(r"\s+", " ", text).strip()


def _content_tokens(text: str) -> list[str]:
    return [w.strip(".'") for w in _WORD.findall(text) if w.strip(".'") and w.strip(".'") not in _STOPWORDS]


def _mentions(text_tokens: set[str], phrase: str) -> bool:
    """A marker phrase counts as mentioned when most (60%) of its content words appear."""
    tokens = [t for t in _content_tokens(_normalise(phrase)) if len(t) >= 3]
    if not tokens:
        return False
    hits = sum(1 for t in tokens if t in text_tokens)
    return hits >= math.ceil(0.6 * len(tokens))


class PromptAnalysis(BaseModel):
    """What the rubric found in one prompt; each list holds the matched terms."""

    model_config = ConfigDict(frozen=True)

    subject: list[str]
    action: list[str]
    setting: list[str]
    time_of_day: list[str]
    shot_type: list[str]
    camera_angle: list[str]
    lens: list[str]
    lens_mm: list[int]
    aperture: list[str]
    f_numbers: list[float]
    light_direction: list[str]
    light_source: list[str]
    color_temperature: list[int]
    light_angle: list[str]
    composition: list[str]
    palette: list[str]
    materials: list[str]
    subject_detail: list[str]
    mood: list[str]
    style: list[str]
    production: list[str]
    vague: list[str]
    tag_soup: list[str]
    conflicts: list[str]
    words: int
    content_words: int
    sentences: int
    marker_palette: list[str]
    marker_palette_missing: list[str]
    brand_keywords: list[str]
    brand_keywords_missing: list[str]
    characters: list[str]
    characters_missing: list[str]
    marker_style: bool | None
    marker_setting: bool | None

    def has(self, key: str) -> bool:
        """Whether element ``key`` (an ElementKey) is fully present."""
        if key in ("marker_palette", "brand_keywords"):
            return not getattr(self, f"{key}_missing")
        if key == "characters":
            return bool(self.characters) or not self.characters_missing
        if key in ("marker_style", "marker_setting"):
            return getattr(self, key) is not False
        if key == "aperture":
            return bool(self.f_numbers) or bool(self.aperture)
        return bool(getattr(self, key))


def _names(terms: Sequence[Term]) -> list[str]:
    return [t.name for t in terms]


def _conflicts(times: list[str], text: str) -> list[str]:
    """Pairs of terms that cannot both hold in one frame."""
    shots, angles = found(text, Shot), found(text, CameraAngle)
    depths, sources = found(text, DepthOfField), _names(found(text, LightSource))
    pairs = [
        (set(times) & (_MORNING | _DAY), set(times) & _NIGHT),
        (set(times) & _MORNING, set(times) & _EVENING),
        ({a.name for a in angles if a.height == "overhead"}, {a.name for a in angles if a.height == "low"}),
        ({s.name for s in shots if s.scale >= _DETAIL_SCALE}, {s.name for s in shots if s.group == "wide"}),
    ]
    out = [f"{min(a)} vs {min(b)}" for a, b in pairs if a and b]
    if {d.depth for d in depths} >= {"shallow", "deep"}:
        out.append("shallow vs deep depth of field")
    if {"high-key", "low-key"} <= set(sources):
        out.append("high-key vs low-key lighting")
    return out


def _actions(text: str) -> list[str]:
    actions = _find(text, _ACTION_VERBS)
    not_actions = _NOT_ACTIONS | _technical_words()
    for word in re.findall(r"\b[a-z]{3,}ing\b", text):
        if word not in not_actions and word not in VAGUE_WORDS and word not in actions:
            actions.append(word)
    return actions


def _names_something(token: str) -> bool:
    """A content word that is not camera/lighting vocabulary, a number or a vague word."""
    parts = [p for p in re.split(r"[-/.]", token) if p]
    if not parts or token[0].isdigit() or token in VAGUE_WORDS:
        return False
    technical = _technical_words()
    return not all(p in technical or p in _STOPWORDS for p in parts)


def analyze_prompt(prompt: str, markers: ConsistencyMarkers | None = None) -> PromptAnalysis:
    """Detect every rubric element in ``prompt`` (and which storyboard markers it carries).

    Scoring, critiquing and planning the next pass each analyse the same prompt, so results
    are memoised per (prompt, markers); callers get a copy they may change.
    """
    markers_json = (markers or ConsistencyMarkers()).model_dump_json()
    return _analyze(prompt, markers_json).model_copy(deep=True)


@lru_cache(maxsize=512)
def _analyze(prompt: str, markers_json: str) -> PromptAnalysis:
    markers = ConsistencyMarkers.model_validate_json(markers_json)
    text = _normalise(prompt)
    described = _QUOTED.sub(" ", text)  # quoted copy is not description
    tokens = _content_tokens(text)
    token_set = set(tokens)
    sentences = len([s for s in re.split(r"[.!?;]+(?:\s|$)", text) if len(_WORD.findall(s)) >= 2])
    subject = [t for t in _content_tokens(described) if _names_something(t)][:3]

    palette_have = [c for c in markers.palette if _mentions(token_set, c)]
    keywords_have = [k for k in markers.brand_keywords if _mentions(token_set, k)]
    characters_have = [c for c in markers.characters if _mentions(token_set, c)]
    times = _find(text, _TIME_OF_DAY)
    return PromptAnalysis(
        subject=subject,
        action=_actions(described),
        setting=_find(text, _SETTING),
        time_of_day=times,
        shot_type=_names(found(text, Shot)),
        camera_angle=_names(found(text, CameraAngle)),
        lens=[f"{m}mm" for m in _LENS_MM.findall(text)] + _names(found(text, Lens)),
        lens_mm=[int(m) for m in _LENS_MM.findall(text)],
        aperture=_names(found(text, DepthOfField)),
        f_numbers=[float(m) for m in _F_NUMBER.findall(text)],
        light_direction=_names(found(text, LightDirection)),
        light_source=_names(found(text, LightSource)),
        color_temperature=[int(k) for k in _KELVIN.findall(text) if 1000 <= int(k) <= 12000],
        light_angle=_DEGREES.findall(text),
        composition=_names(found(text, Composition)),
        palette=_find(text, _COLOURS),
        materials=_find(text, _MATERIALS),
        subject_detail=_find(text, _SUBJECT_DETAIL_WORDS)
        + [m.group(0) for p in _AGE_PATTERNS for m in re.finditer(p, text)],
        mood=_find(text, _MOOD),
        style=_find(text, _STYLE),
        production=_find(text, _PRODUCTION),
        vague=_find(described, VAGUE_WORDS),
        tag_soup=_find(described, TAG_SOUP),
        words=len(_WORD.findall(text)),
        content_words=len(tokens),
        sentences=sentences,
        marker_palette=palette_have,
        marker_palette_missing=[c for c in markers.palette if c not in palette_have],
        brand_keywords=keywords_have,
        brand_keywords_missing=[k for k in markers.brand_keywords if k not in keywords_have],
        characters=characters_have,
        characters_missing=[c for c in markers.characters if c not in characters_have],
        marker_style=_mentions(token_set, markers.style) if markers.style.strip() else None,
        marker_setting=_mentions(token_set, markers.setting) if markers.setting.strip() else None,
        conflicts=_conflicts(times, text),
    )


def _clamp(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 1)


def _completeness(a: PromptAnalysis) -> float:
    lighting = a.light_direction or a.light_source or a.color_temperature
    points = (
        15 * bool(a.subject)
        + 10 * bool(a.action)
        + 15 * bool(a.setting)
        + 10 * bool(a.time_of_day)
        + 10 * bool(a.shot_type)
        + 10 * bool(lighting)
        + 10 * bool(a.composition)
        + 10 * bool(a.palette)
        + 10 * bool(a.mood)
    )
    return _clamp(points)


def _specificity(a: PromptAnalysis) -> float:
    points = (
        10 * bool(a.lens_mm)
        + 10 * bool(a.f_numbers)
        + 10 * bool(a.color_temperature)
        + 5 * bool(a.light_angle)
        + 5 * min(3, len(a.palette))
        + 5 * min(3, len(a.materials))
        + 10 * bool(a.subject_detail)
        + min(25.0, 0.5 * a.content_words)
    )
    return _clamp(points - min(30, 10 * len(a.vague)))


def _professionalism(a: PromptAnalysis) -> float:
    technical = sum(
        bool(x)
        for x in (
            a.shot_type,
            a.camera_angle,
            a.lens,
            a.aperture or a.f_numbers,
            a.light_direction,
            a.color_temperature,
            a.composition,
        )
    )
    structure = 15 if a.sentences >= 3 else 8 if a.sentences == 2 else 0
    length = 10 if a.words >= 30 else 5 if a.words >= 15 else 0
    points = structure + 6 * technical + 13 * bool(a.style) + 5 * min(2, len(a.production)) + length + 10 * bool(a.mood)
    penalty = 10 * len(a.vague) + 8 * len(a.tag_soup) + 15 * len(a.conflicts) + 10 * (a.words > 220)
    return _clamp(points - penalty)


def _cinematography(a: PromptAnalysis) -> float:
    points = (
        15 * bool(a.shot_type)
        + 15 * bool(a.camera_angle)
        + 12 * bool(a.lens)
        + 12 * bool(a.aperture or a.f_numbers)
        + 14 * bool(a.light_direction)
        + 12 * bool(a.color_temperature)
        + 14 * bool(a.composition)
        + 6 * bool(a.light_source)
    )
    return _clamp(points - 10 * len(a.conflicts))


def _fraction(have: list[str], missing: list[str]) -> float:
    return len(have) / (len(have) + len(missing))


def _brand_alignment(a: PromptAnalysis) -> float:
    parts: list[tuple[float, float]] = []  # (weight, fraction earned)
    if a.marker_palette or a.marker_palette_missing:
        parts.append((30, _fraction(a.marker_palette, a.marker_palette_missing)))
    if a.brand_keywords or a.brand_keywords_missing:
        parts.append((25, _fraction(a.brand_keywords, a.brand_keywords_missing)))
    if a.marker_style is not None:
        parts.append((15, float(a.marker_style)))
    if a.characters or a.characters_missing:
        parts.append((15, float(bool(a.characters))))
    if a.marker_setting is not None:
        parts.append((15, float(a.marker_setting)))
    if not parts:  # nothing to align to: judge the prompt's own look and feel
        return _clamp(35 * (len(a.palette) >= 2) + 35 * bool(a.mood) + 30 * bool(a.style))
    total = sum(w for w, _ in parts)
    return _clamp(100 * sum(w * f for w, f in parts) / total)


def score_prompt(prompt: str, markers: ConsistencyMarkers | None = None) -> DimensionScores:
    """The five 0-100 dimension scores of ``prompt`` against the storyboard's markers."""
    a = analyze_prompt(prompt, markers)
    return DimensionScores(
        completeness=_completeness(a),
        specificity=_specificity(a),
        professionalism=_professionalism(a),
        cinematography=_cinematography(a),
        brand_alignment=_brand_alignment(a),
    )


#: Which elements earn points in which dimension, in the order a critique should ask for them.
# fmt: off
_DIMENSION_ELEMENTS: dict[str, tuple[str, ...]] = {
    "completeness": (
        "subject", "action", "setting", "time_of_day", "shot_type", "light_source", "composition",
        "palette", "mood",
    ),
    "specificity": (
        "lens", "aperture", "color_temperature", "light_angle", "palette", "materials",
        "subject_detail",
    ),
    "professionalism": (
        "shot_type", "camera_angle", "lens", "aperture", "light_direction", "color_temperature",
        "composition", "style", "production", "mood",
    ),
    "cinematography": (
        "shot_type", "camera_angle", "lens", "aperture", "light_direction", "color_temperature",
        "composition", "light_source",
    ),
    "brand_alignment": (
        "marker_palette", "brand_keywords", "marker_style", "characters", "marker_setting",
    ),
}
# fmt: on


def _element_missing(a: PromptAnalysis, key: str) -> bool:
    if key == "lens":
        return not a.lens_mm
    if key == "aperture":
        return not a.f_numbers
    if key == "palette":
        return len(a.palette) < 3
    if key == "materials":
        return len(a.materials) < 2
    if key == "production":
        return len(a.production) < 2
    if key == "light_source":
        return not (a.light_source or a.light_direction or a.color_temperature)
    return not a.has(key)


def missing_element_keys(prompt: str, markers: ConsistencyMarkers | None = None) -> dict[str, list[str]]:
    """Per dimension, the ElementKeys whose absence costs points (empty list: nothing to add)."""
    a = analyze_prompt(prompt, markers)
    out: dict[str, list[str]] = {}
    for dimension in DIMENSIONS:
        keys = list(_DIMENSION_ELEMENTS[dimension])
        if dimension == "brand_alignment" and not any((markers or ConsistencyMarkers()).model_dump().values()):
            keys = ["palette", "mood", "style"]
        out[dimension] = [k for k in keys if _element_missing(a, k)]
    return out


def missing_elements(prompt: str, markers: ConsistencyMarkers | None = None) -> dict[str, list[str]]:
    """Per dimension, what a critique should name as missing or wrong, in plain words."""
    a = analyze_prompt(prompt, markers)
    out = {d: [ELEMENT_LABELS[k] for k in keys] for d, keys in missing_element_keys(prompt, markers).items()}
    if a.marker_palette_missing and "the storyboard palette" in out["brand_alignment"]:
        i = out["brand_alignment"].index("the storyboard palette")
        out["brand_alignment"][i] = "the storyboard palette (" + ", ".join(a.marker_palette_missing) + ")"
    if a.brand_keywords_missing and "the brand keywords" in out["brand_alignment"]:
        i = out["brand_alignment"].index("the brand keywords")
        out["brand_alignment"][i] = "the brand keywords (" + ", ".join(a.brand_keywords_missing) + ")"
    if a.vague:
        problem = "replace vague words: " + ", ".join(a.vague)
        out["specificity"].append(problem)
        out["professionalism"].append(problem)
    if a.tag_soup:
        out["professionalism"].append("drop tag-soup terms: " + ", ".join(a.tag_soup))
    if a.conflicts:
        problem = "resolve conflicting terms: " + "; ".join(a.conflicts)
        out["professionalism"].append(problem)
        out["cinematography"].append(problem)
    if a.words > 220:
        out["professionalism"].append(f"tighten the prompt ({a.words} words; aim for under 220)")
    return out
