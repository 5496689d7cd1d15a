"""The offline generator: seeded composition frames drawn from the prompt's words.

No diffusion weights ship with ImageForge, yet the whole pipeline (best-of-N, scoring,
retries, chaining, traces) has to run and be inspected on any machine. The sketch generator
renders what a storyboard artist would pencil in before a shoot: the horizon where the
camera angle puts it, a sky or backdrop coloured by time of day, palette and colour
temperature, light falling off from the named side, a subject silhouette scaled by the shot
type and placed by the composition rule, and seeded background shapes and texture so that
variations differ. Reference images lend their dominant colours, so chained scenes share a
look the consistency scorer can measure.

Shot types (with their subject scale), camera angles (with their horizon), light words and
composition rules come from the shared cinematography vocabulary
(``imageforge.agents.vocabulary``), so the sketch frames a prompt the way the rubric scores
it and the cinematographer writes it: "wide angle" is a lens, and leaves the shot alone.

Everything is a pure function of (prompt, negative prompt, seed, references, size): the same
inputs give the same bytes, alone or in a batch.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from imageforge.agents.vocabulary import (
    CameraAngle,
    Composition,
    LightDirection,
    find_terms,
    found,
    longest,
    named_shot,
    vocabulary,
)
from imageforge.tools.references import (
    find_phrase_spans,
    find_phrases,
    longest_match,
    normalise_text,
    reference_features,
)
from imageforge.tools.schemas import GeneratedImage, GenerationOutput, ImageSize

__all__ = [
    "COLOR_NAMES",
    "FrameSpec",
    "SketchGenerator",
    "dominant_colors",
    "kelvin_to_rgb",
    "parse_frame",
    "reference_palette",
    "render_frame",
]

RGB = tuple[int, int, int]
SubjectKind = Literal["person", "object", "shape"]

# ---------------------------------------------------------------------------------------
# Tables: prompt words -> frame decisions. Phrases match whole words, case-insensitively,
# with hyphens read as spaces; where several phrases of one table match, the longest wins.
# ---------------------------------------------------------------------------------------

#: The shot when the prompt names none (its subject scale is the vocabulary's).
DEFAULT_SHOT = "medium shot"
#: Subjects at least this large are framed from the top (cut by the frame's bottom edge);
#: smaller ones stand on the ground.
FRAMED_FROM_TOP = 0.68

#: Time of day -> (typical colour temperature K, sky top, sky bottom, phrases).
TIME_OF_DAY: dict[str, tuple[int, RGB, RGB, tuple[str, ...]]] = {
    "golden hour": (
        3000,
        (236, 146, 78),
        (255, 212, 148),
        ("golden hour", "sunset", "magic hour", "late afternoon"),
    ),
    "sunrise": (
        3500,
        (120, 140, 200),
        (255, 194, 150),
        ("sunrise", "dawn", "daybreak", "first light"),
    ),
    "morning": (4800, (160, 196, 235), (250, 232, 205), ("morning", "breakfast", "early morning")),
    "midday": (
        5600,
        (100, 160, 230),
        (215, 232, 250),
        ("midday", "noon", "afternoon", "daylight", "daytime", "sunny"),
    ),
    "dusk": (7500, (45, 55, 115), (210, 120, 120), ("dusk", "twilight", "blue hour", "evening")),
    "night": (
        7000,
        (8, 10, 28),
        (28, 34, 66),
        ("night", "midnight", "nighttime", "night time", "moonlight", "moonlit", "neon"),
    ),
}
#: A grey seamless backdrop when the prompt names no time of day.
NEUTRAL_SKY: tuple[int, RGB, RGB] = (5500, (196, 196, 202), (150, 150, 158))

# fmt: off
#: Named colours the palette understands (sRGB).
COLOR_NAMES: dict[str, RGB] = {
    "red": (200, 40, 40), "crimson": (165, 20, 45), "scarlet": (220, 36, 30), "burgundy": (110, 20, 40),
    "orange": (235, 130, 40), "amber": (240, 170, 50), "gold": (212, 175, 55), "yellow": (240, 210, 60),
    "mustard": (205, 165, 40), "cream": (245, 235, 210), "ivory": (250, 245, 230), "beige": (220, 200, 170),
    "tan": (205, 170, 125), "brown": (120, 75, 45), "chestnut": (150, 75, 50), "chocolate": (90, 55, 35),
    "caramel": (190, 120, 60), "copper": (184, 115, 51), "bronze": (160, 110, 50), "terracotta": (200, 100, 70),
    "green": (60, 150, 70), "emerald": (20, 140, 90), "olive": (110, 115, 50), "sage": (160, 180, 140),
    "mint": (160, 225, 190), "forest green": (35, 85, 45), "teal": (30, 130, 130), "turquoise": (60, 200, 195),
    "blue": (50, 100, 200), "navy": (25, 35, 90), "navy blue": (25, 35, 90), "cobalt": (0, 70, 170),
    "sky blue": (135, 195, 235), "purple": (120, 60, 160), "violet": (140, 90, 200), "lavender": (190, 170, 225),
    "pink": (235, 150, 180), "magenta": (200, 40, 150), "blush": (230, 180, 180), "white": (245, 245, 245),
    "black": (20, 20, 22), "grey": (128, 128, 130), "gray": (128, 128, 130), "charcoal": (55, 58, 62),
    "silver": (192, 192, 198), "slate": (90, 100, 115),
}
MAX_PALETTE = 4

PERSON_WORDS = (
    "woman", "man", "person", "people", "girl", "boy", "child", "kid", "model", "chef", "barista",
    "character", "athlete", "dancer", "businessman", "businesswoman", "customer", "face", "couple",
    "family", "worker", "runner", "women", "men", "friends",
)
OBJECT_WORDS = (
    "cup", "mug", "coffee", "bottle", "perfume", "watch", "phone", "smartphone", "product", "can",
    "glass", "jar", "box", "package", "handbag", "bag", "shoe", "shoes", "sneaker", "laptop", "book",
    "candle", "bowl", "plate", "car",
)
# fmt: on

#: The camera when the prompt names none with a height; its horizon is the vocabulary's
#: (a low camera sees more sky, overhead sees no horizon).
DEFAULT_CAMERA = "eye-level"
DUTCH_TILT_DEG = 8.0
#: The guide rules, in the order the metadata lists them.
GUIDES = ("rule of thirds", "leading lines", "symmetry", "centered")

#: Light direction, read from "light ... from the left", "right side light", and light words
#: that name a side on their own ("backlit", "top light": the vocabulary's ``side``).
_LIGHT_WORD = r"(?:light|lit|lighting|sun|sunlight|window|lamp|glow|key|illuminated|daylight)"
_LIGHT_FROM = re.compile(
    _LIGHT_WORD
    + r"\b[^.;]{0,40}?\bfrom (?:the )?(?:upper |top |lower )?(left|right|above|behind|overhead|top|below|back)\b"
)
_LIGHT_SIDE = re.compile(r"\b(left|right)(?: side| hand)? (?:soft |warm |cool |natural )?(?:window |key |side )?light")
_LIGHT_ALIASES = {"overhead": "above", "top": "above", "back": "behind"}
DEFAULT_LIGHT = "left"

_KELVIN = re.compile(r"\b(\d{1,2}[,.]?\d{3})\s?(?:k|kelvin)\b")

#: Light falloff strength across the frame and vignette strength, by mood.
MOOD_LIGHTING: dict[str, tuple[float, float]] = {
    "dramatic": (0.8, 0.4),
    "action": (0.5, 0.25),
    "calm": (0.3, 0.15),
    "neutral": (0.5, 0.22),
}

#: How strongly reference colours pull the frame's colours toward them.
REFERENCE_BLEND = 0.45
SUBJECT_REFERENCE_BLEND = 0.3
#: An explicit colour temperature tints the background this much; light colours take it fully.
TEMPERATURE_TINT = 0.35


def kelvin_to_rgb(kelvin: float) -> RGB:
    """The colour of a black body at ``kelvin``, Tanner Helland's fit (1000-40000 K)."""
    temp = min(max(kelvin, 1000.0), 40000.0) / 100.0
    if temp <= 66:
        red = 255.0
        green = 99.4708025861 * math.log(temp) - 161.1195681661
    else:
        red = 329.698727446 * (temp - 60) ** -0.1332047592
        green = 288.1221695283 * (temp - 60) ** -0.0755148492
    if temp >= 66:
        blue = 255.0
    elif temp <= 19:
        blue = 0.0
    else:
        blue = 138.5177312231 * math.log(temp - 10) - 305.0447927307
    return tuple(round(min(max(c, 0.0), 255.0)) for c in (red, green, blue))  # type: ignore[return-value]


@dataclass(frozen=True)
class FrameSpec:
    """What the sketch generator read from a prompt; recorded in every image's metadata.

    The shot and the camera have no defaults here: their scale and horizon are the
    vocabulary's, which ``parse_frame`` reads (and this class is built nowhere else).
    """

    shot_type: str
    subject_scale: float
    camera_angle: str
    horizon: float
    tilted: bool = False
    subject: SubjectKind = "shape"
    palette: tuple[str, ...] = ()
    excluded_colors: tuple[str, ...] = ()
    time_of_day: str = "neutral"
    color_temperature_k: int = NEUTRAL_SKY[0]
    temperature_source: Literal["prompt", "time of day", "default"] = "default"
    light_direction: str = DEFAULT_LIGHT
    light_source: Literal["prompt", "default"] = "default"
    composition: tuple[str, ...] = ()
    placement: str = "centre"
    placement_x: float = 0.5
    mood: str = "neutral"
    setting: str = "neutral"

    def as_metadata(self) -> dict[str, Any]:
        return {
            "shot_type": self.shot_type,
            "subject": self.subject,
            "palette": list(self.palette),
            "excluded_colors": list(self.excluded_colors),
            "time_of_day": self.time_of_day,
            "color_temperature_k": self.color_temperature_k,
            "temperature_source": self.temperature_source,
            "light_direction": self.light_direction,
            "light_source": self.light_source,
            "composition": list(self.composition),
            "placement": self.placement,
            "camera_angle": self.camera_angle,
            "horizon": self.horizon,
            "tilted": self.tilted,
            "mood": self.mood,
            "setting": self.setting,
        }


def _earliest(text: str, groups: dict[str, tuple[str, ...]]) -> str | None:
    """The group whose word appears first in ``text``."""
    found = find_phrases(text, [word for words in groups.values() for word in words])
    if not found:
        return None
    return next(group for group, words in groups.items() if found[0] in words)


def _light_direction(text: str) -> str | None:
    lowered = normalise_text(text)
    candidates: list[tuple[int, str]] = []
    for pattern in (_LIGHT_FROM, _LIGHT_SIDE):
        for match in pattern.finditer(lowered):
            candidates.append((match.start(), _LIGHT_ALIASES.get(match.group(1), match.group(1))))
    for term in find_terms(text):
        if isinstance(term.term, LightDirection) and term.term.side is not None:
            candidates.append((term.start, term.term.side))
    return min(candidates)[1] if candidates else None


def _composition(text: str) -> tuple[tuple[str, ...], str, float]:
    lowered = normalise_text(text)
    named = {composition.guide for composition in found(text, Composition)}
    rules = [guide for guide in GUIDES if guide in named]
    on_right = re.search(
        r"\b(?:right third|on the right|right of (?:the )?frame|frame right|right side of the frame)\b",
        lowered,
    )
    on_left = re.search(
        r"\b(?:left third|on the left|left of (?:the )?frame|frame left|left side of the frame)\b",
        lowered,
    )
    if "symmetry" in rules or "centered" in rules:
        return tuple(rules), "centre", 0.5
    if on_right and (not on_left or on_right.start() < on_left.start()):
        return tuple(rules), "right third", 2 / 3
    if on_left or "rule of thirds" in rules:
        return tuple(rules), "left third", 1 / 3
    return tuple(rules), "centre", 0.5


def _palette_names(text: str) -> list[str]:
    """Colour names in order of appearance. Two colour words in a row name one colour
    ("emerald green", "chestnut brown"), so only the first of such a pair counts."""
    names: list[str] = []
    previous_end = -2
    normalised = normalise_text(text)
    for start, end, name in find_phrase_spans(text, COLOR_NAMES):
        adjacent = start == previous_end + 1 and normalised[previous_end:start] == " "
        previous_end = end
        if not adjacent and name not in names:
            names.append(name)
    return names


def parse_frame(prompt: str, negative_prompt: str = "") -> FrameSpec:
    """Read the frame decisions from ``prompt`` with the vocabulary and the tables above.

    Colours named in ``negative_prompt`` are dropped from the palette. Everything the prompt
    does not mention takes a documented default: a medium shot, a grey backdrop at 5500 K,
    light from the left, the subject centred, an eye-level horizon. A lens that implies a
    shot ("macro") sets the shot when none is named; a shot that implies a camera ("flat
    lay", "aerial") sets the camera when no height is named.
    """
    features = reference_features(prompt)
    shot = named_shot(prompt) or vocabulary().shot(DEFAULT_SHOT)

    excluded = tuple(find_phrases(negative_prompt, COLOR_NAMES)) if negative_prompt else ()
    palette = tuple(name for name in _palette_names(prompt) if name not in excluded)[:MAX_PALETTE]

    time_of_day = longest_match(prompt, {name: row[3] for name, row in TIME_OF_DAY.items()})
    kelvin, source = (TIME_OF_DAY[time_of_day][0], "time of day") if time_of_day else (NEUTRAL_SKY[0], "default")
    match = _KELVIN.search(prompt.lower())
    if match:
        value = int(re.sub(r"[,.]", "", match.group(1)))
        if 1000 <= value <= 12000:
            kelvin, source = value, "prompt"

    light = _light_direction(prompt)
    rules, placement, placement_x = _composition(prompt)
    camera = longest(prompt, CameraAngle, lambda angle: angle.horizon is not None)
    if camera is None and shot.angle is not None:
        camera = vocabulary().angle(shot.angle)
    camera = camera or vocabulary().angle(DEFAULT_CAMERA)
    subject = _earliest(prompt, {"person": PERSON_WORDS, "object": OBJECT_WORDS}) or "shape"
    return FrameSpec(
        shot_type=shot.name,
        subject_scale=shot.scale,
        camera_angle=camera.name,
        horizon=camera.horizon if camera.horizon is not None else 0.5,
        tilted=camera.tilt,
        subject=subject,  # type: ignore[arg-type]
        palette=palette,
        excluded_colors=excluded,
        time_of_day=time_of_day or "neutral",
        color_temperature_k=kelvin,
        temperature_source=source,  # type: ignore[arg-type]
        light_direction=light or DEFAULT_LIGHT,
        light_source="prompt" if light else "default",
        composition=rules,
        placement=placement,
        placement_x=placement_x,
        mood=features.mood,
        setting=features.setting,
    )


# ---------------------------------------------------------------------------------------
# Reference palettes
# ---------------------------------------------------------------------------------------


def dominant_colors(image: Image.Image, count: int = 4) -> list[tuple[RGB, float]]:
    """The ``count`` main colours of ``image`` with the fraction of pixels each covers.

    A 64x64 thumbnail quantized by median cut: cheap, deterministic and good enough to
    carry a look from one scene to the next.
    """
    if count < 1:
        raise ValueError(f"`count` must be >= 1, got {count!r}.")
    thumb = image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
    quantized = thumb.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    flat = quantized.getpalette() or []
    colours = quantized.getcolors(maxcolors=256) or []
    total = float(sum(n for n, _ in colours))
    found: list[tuple[RGB, float]] = []
    for n, i in colours:
        if not isinstance(i, int):  # a "P" image counts palette indices
            raise TypeError(f"expected a palette index from the quantized image, got {i!r}")
        found.append(((flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]), n / total))
    return sorted(found, key=lambda item: (-item[1], item[0]))


def reference_palette(references: list[Image.Image], count: int = 4) -> list[tuple[RGB, float]]:
    """The references' dominant colours, weighted: the first reference (the one the attempt
    strategy chose) counts twice as much as each of the others (e.g. the anchor)."""
    if not references:
        return []
    weights = [1.0] + [0.5] * (len(references) - 1)
    total = sum(weights)
    merged: list[tuple[RGB, float]] = []
    for reference, weight in zip(references, weights, strict=False):
        merged.extend((rgb, share * weight / total) for rgb, share in dominant_colors(reference, count))
    return merged


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


def _mix(a: RGB | np.ndarray, b: RGB | np.ndarray, t: float) -> np.ndarray:
    return np.asarray(a, dtype=np.float32) * (1.0 - t) + np.asarray(b, dtype=np.float32) * t


def _luma(rgb: np.ndarray) -> float:
    return float(0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])


def _nearest(colour: np.ndarray, palette: list[tuple[RGB, float]]) -> np.ndarray:
    options = np.asarray([rgb for rgb, _ in palette], dtype=np.float32)
    return options[int(np.argmin(((options - colour) ** 2).sum(axis=1)))]


def _rgb(colour: np.ndarray) -> RGB:
    return tuple(int(v) for v in np.clip(np.rint(colour), 0, 255))  # type: ignore[return-value]


@dataclass(frozen=True)
class _Colours:
    sky_top: np.ndarray
    sky_bottom: np.ndarray
    ground_top: np.ndarray
    ground_bottom: np.ndarray
    light: np.ndarray
    subject: RGB
    accents: list[np.ndarray]


def _resolve_colours(spec: FrameSpec, ref_palette: list[tuple[RGB, float]]) -> _Colours:
    """Frame colours from time of day, palette, temperature and references, in that order."""
    _, top, bottom, _ = TIME_OF_DAY.get(spec.time_of_day, (0, NEUTRAL_SKY[1], NEUTRAL_SKY[2], ()))
    sky_top, sky_bottom = np.asarray(top, np.float32), np.asarray(bottom, np.float32)
    named = [np.asarray(COLOR_NAMES[name], np.float32) for name in spec.palette]
    backdrop = named[1:] or named
    if backdrop:
        sky_top = _mix(sky_top, backdrop[0], 0.25)
        sky_bottom = _mix(sky_bottom, backdrop[-1], 0.3)

    light = np.asarray(kelvin_to_rgb(spec.color_temperature_k), np.float32)
    if spec.temperature_source == "prompt":
        tint = light / light.max()
        sky_top = sky_top * (1 - TEMPERATURE_TINT + TEMPERATURE_TINT * tint)
        sky_bottom = sky_bottom * (1 - TEMPERATURE_TINT + TEMPERATURE_TINT * tint)

    earth = {"outdoor": (95, 110, 70), "indoor": (125, 98, 72)}.get(spec.setting, tuple(sky_bottom))
    earth_scaled = np.asarray(earth, np.float32) * min(1.0, _luma(sky_bottom) / 200.0 + 0.15)
    ground_top = _mix(sky_bottom, earth_scaled, 0.45) * 0.78
    ground_bottom = ground_top * 0.62

    if named:
        subject = named[0]
    elif _luma(_mix(sky_top, sky_bottom, 0.5)) > 110:
        subject = np.asarray((48, 50, 60), np.float32)
    else:
        subject = np.asarray((196, 198, 210), np.float32)
    accents = list(backdrop) or [_mix(light, sky_bottom, 0.5), _mix(sky_top, (255, 255, 255), 0.3)]

    if ref_palette:
        sky_top, sky_bottom, ground_top, ground_bottom = (
            _mix(c, _nearest(c, ref_palette), REFERENCE_BLEND) for c in (sky_top, sky_bottom, ground_top, ground_bottom)
        )
        subject = _mix(subject, _nearest(subject, ref_palette), SUBJECT_REFERENCE_BLEND)
        accents = [np.asarray(rgb, np.float32) for rgb, _ in ref_palette[:MAX_PALETTE]] + accents
    return _Colours(sky_top, sky_bottom, ground_top, ground_bottom, light, _rgb(subject), accents)


def _horizon_rows(spec: FrameSpec, width: int, height: int) -> np.ndarray:
    """Horizon y (pixels) for each column: flat, tilted for a dutch angle, 0 for overhead."""
    base = spec.horizon * height
    xs = np.arange(width, dtype=np.float32)
    if spec.tilted:
        return base + math.tan(math.radians(DUTCH_TILT_DEG)) * (xs - width / 2)
    return np.full(width, base, dtype=np.float32)


def _gradient(spec: FrameSpec, colours: _Colours, width: int, height: int) -> np.ndarray:
    """Sky above the horizon, ground below: (H, 1, 3), or (H, W, 3) when the horizon tilts."""
    horizon = _horizon_rows(spec, width, height)
    row = horizon[None, :] if spec.tilted else horizon[None, :1]
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    t_sky = np.clip(ys / np.maximum(row, 1.0), 0.0, 1.0)[..., None]
    t_ground = np.clip((ys - row) / np.maximum(height - row, 1.0), 0.0, 1.0)[..., None]
    sky_rgb = colours.sky_top + (colours.sky_bottom - colours.sky_top) * t_sky
    ground_rgb = colours.ground_top + (colours.ground_bottom - colours.ground_top) * t_ground
    return np.where((ys < row)[..., None], sky_rgb, ground_rgb).astype(np.float32, copy=False)


def _lighting(spec: FrameSpec, width: int, height: int, centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel gain of the frame colour and weight of the light colour, both (H, W).

    The gain falls off linearly away from the light's side (radially around the subject
    for a backlight) and is darkened by a vignette; where the gain exceeds 1 the light's
    own colour bleeds in, so a 3200 K key warms the lit side.
    """
    strength, vignette = MOOD_LIGHTING.get(spec.mood, MOOD_LIGHTING["neutral"])
    xs = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width
    ys = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
    if spec.light_direction == "behind":
        cx, cy = centre[0] / width, centre[1] / height
        d2 = (xs - cx) ** 2 + (ys - cy) ** 2
        factor = (1 - strength / 2) + strength * np.exp(d2 * np.float32(-1 / (2 * 0.3**2)))
    else:
        t = {"left": xs, "right": 1 - xs, "above": ys, "below": 1 - ys}[spec.light_direction]
        factor = 1 + strength * (0.5 - t)
    factor = factor * (1 - vignette * 2 * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2))
    glow = np.clip(factor - 1.0, 0.0, 1.0) * np.float32(0.5)
    return (factor * (1 - glow)).astype(np.float32, copy=False), glow.astype(np.float32, copy=False)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Seeded cloud-like low-frequency texture plus fine grain, float32 (H, W)."""
    coarse = rng.random((8, 8), dtype=np.float32)
    texture = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    texture = (texture - np.float32(0.5)) * np.float32(28.0)
    texture += rng.standard_normal((height, width), dtype=np.float32) * np.float32(3.0)
    return texture


def _background(
    spec: FrameSpec,
    colours: _Colours,
    rng: np.random.Generator,
    width: int,
    height: int,
    centre: tuple[float, float],
) -> Image.Image:
    """Gradient x lighting + light colour + seeded texture, as an RGB image."""
    gain, glow = _lighting(spec, width, height, centre)
    if spec.tilted:
        # A tilted horizon needs a full (H, W, 3) gradient: compute it at a quarter of the
        # size and let Pillow upsample it, which is several times cheaper than numpy here.
        small = _gradient(spec, colours, max(1, width // 4), max(1, height // 4))
        small_image = Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8))
        gradient = np.asarray(small_image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    else:
        gradient = _gradient(spec, colours, width, height)
    pixels = gradient * gain[..., None]
    pixels += glow[..., None] * colours.light
    pixels += _texture(rng, width, height)[..., None]
    np.rint(pixels, out=pixels)
    np.clip(pixels, 0, 255, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8))


def _subject_box(
    spec: FrameSpec, rng: np.random.Generator, width: int, height: int
) -> tuple[float, float, float, float]:
    scale = spec.subject_scale * float(1 + rng.uniform(-0.06, 0.06))
    h = scale * height
    w = h * {"person": 0.46, "object": 0.6, "shape": 0.8}[spec.subject]
    cx = (spec.placement_x + float(rng.normal(0.0, 0.02))) * width
    if spec.subject_scale >= FRAMED_FROM_TOP:
        top = 0.1 * height
    else:
        horizon = spec.horizon * height
        bottom = horizon + 0.55 * (height - horizon) if spec.horizon > 0.05 else 0.5 * height + h / 2
        top = max(bottom - h, 0.04 * height)
    return cx - w / 2, top, cx + w / 2, top + h


def _draw_subject(
    draw: ImageDraw.ImageDraw, kind: SubjectKind, box: tuple[float, float, float, float], fill: RGB
) -> None:
    x0, y0, x1, y1 = box
    h = y1 - y0
    cx = (x0 + x1) / 2
    if kind == "person":
        r = 0.14 * h
        draw.ellipse((cx - r, y0, cx + r, y0 + 2 * r), fill=fill)
        draw.rectangle((cx - 0.35 * r, y0 + 1.6 * r, cx + 0.35 * r, y0 + 2.3 * r), fill=fill)
        draw.rounded_rectangle((x0, y0 + 2.15 * r, x1, y1), radius=max(1.0, 0.1 * h), fill=fill)
    elif kind == "object":
        rim = 0.08 * h
        draw.rounded_rectangle((x0, y0 + rim, x1, y1), radius=max(1.0, 0.06 * h), fill=fill)
        draw.ellipse((x0, y0, x1, y0 + 2 * rim), fill=fill)
    else:
        draw.ellipse(box, fill=fill)


def _offset(box: tuple[float, float, float, float], dx: float, dy: float) -> tuple[float, float, float, float]:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def _draw_overlay(
    image: Image.Image,
    spec: FrameSpec,
    colours: _Colours,
    rng: np.random.Generator,
    centre: tuple[float, float],
) -> None:
    """Seeded background shapes, the horizon line and the composition guides, blended in."""
    width, height = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    short = min(width, height)
    rows = _horizon_rows(spec, width, height)
    shapes: list[tuple[str, tuple[float, float, float, float], RGB, int]] = []
    count = int(rng.integers(3, 8))
    for i in range(count):
        accent = colours.accents[int(rng.integers(len(colours.accents)))]
        if spec.setting == "outdoor" and spec.horizon > 0.05:
            # Hills (low mounds) and blocks (buildings, trees) standing on the horizon,
            # mixed toward the sky as distance would.
            x = float(rng.uniform(0, width))
            base = float(rows[min(width - 1, int(x))])
            fill = _rgb(_mix(accent, colours.sky_bottom, 0.45))
            alpha = int(rng.integers(120, 200))
            if rng.random() < 0.5:
                w, h = float(rng.uniform(0.2, 0.6)) * width, float(rng.uniform(0.04, 0.14)) * height
                shapes.append(("mound", (x - w / 2, base - h, x + w / 2, base + h), fill, alpha))
            else:
                w, h = (
                    float(rng.uniform(0.03, 0.12)) * width,
                    float(rng.uniform(0.06, 0.3)) * height,
                )
                shapes.append(("rect", (x - w / 2, base - h, x + w / 2, base), fill, alpha))
        elif spec.setting == "indoor":
            w = float(rng.uniform(0.08, 0.25)) * width
            h = float(rng.uniform(0.08, 0.3)) * height
            x, y = (
                float(rng.uniform(0, width - w)),
                float(rng.uniform(0, max(1.0, 0.6 * height - h))),
            )
            tint = colours.light if i == 0 else accent
            shapes.append(("rect", (x, y, x + w, y + h), _rgb(tint), int(rng.integers(60, 130))))
        else:
            r = float(rng.uniform(0.02, 0.09)) * short
            x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
            tint = _mix(accent, colours.light, float(rng.uniform(0.0, 0.6)))
            shapes.append(("ellipse", (x - r, y - r, x + r, y + r), _rgb(tint), int(rng.integers(50, 120))))
    if "symmetry" in spec.composition:
        shapes += [(k, (width - b[2], b[1], width - b[0], b[3]), c, a) for k, b, c, a in shapes]
    for kind, box, colour, alpha in shapes:
        if kind == "ellipse":
            draw.ellipse(box, fill=(*colour, alpha))
        elif kind == "mound":
            draw.chord(box, 180, 360, fill=(*colour, alpha))
        else:
            draw.rectangle(box, fill=(*colour, alpha))

    line = max(1, short // 256)
    if spec.horizon > 0:
        draw.line([(0, float(rows[0])), (width - 1, float(rows[-1]))], fill=(0, 0, 0, 70), width=line)
    guide = (255, 255, 255, 48)
    if "rule of thirds" in spec.composition:
        for k in (1, 2):
            draw.line([(k * width / 3, 0), (k * width / 3, height)], fill=guide, width=line)
            draw.line([(0, k * height / 3), (width, k * height / 3)], fill=guide, width=line)
    if "centered" in spec.composition or "symmetry" in spec.composition:
        draw.line([(width / 2, 0), (width / 2, height)], fill=guide, width=line)
        draw.line([(0, height / 2), (width, height / 2)], fill=guide, width=line)
    if "leading lines" in spec.composition:
        light = (*_rgb(colours.light), 110)
        for start in ((0, height), (width, height), (0, height * 0.75), (width, height * 0.75)):
            draw.line([start, centre], fill=light, width=2 * line)


def render_frame(
    spec: FrameSpec,
    seed: int,
    size: ImageSize,
    ref_palette: list[tuple[RGB, float]] | None = None,
) -> tuple[Image.Image, dict[str, Any]]:
    """Draw one frame and say what was drawn. The seed drives every random choice."""
    width, height = size.width, size.height
    rng = np.random.default_rng(seed)
    colours = _resolve_colours(spec, ref_palette or [])
    box = _subject_box(spec, rng, width, height)
    centre = ((box[0] + box[2]) / 2, min((box[1] + box[3]) / 2, height * 0.6))

    # 1. Background: gradient, light falloff, vignette, seeded texture.
    image = _background(spec, colours, rng, width, height, centre)

    # 2. Seeded shapes, horizon, composition guides.
    _draw_overlay(image, spec, colours, rng, centre)

    # 3. Subject: cast shadow, rim light on the lit side, then the silhouette itself.
    draw = ImageDraw.Draw(image)
    reach = max(2.0, 0.025 * (box[3] - box[1]))
    dx, dy = {
        "left": (-reach, 0.0),
        "right": (reach, 0.0),
        "above": (0.0, -reach),
        "below": (0.0, reach),
    }.get(spec.light_direction, (0.0, 0.0))
    if spec.subject_scale < FRAMED_FROM_TOP:
        w = box[2] - box[0]
        shadow = _rgb(colours.ground_bottom * 0.6)
        sx = -dx * 4
        draw.ellipse(
            (box[0] + sx - 0.1 * w, box[3] - 0.06 * w, box[2] + sx + 0.1 * w, box[3] + 0.06 * w),
            fill=shadow,
        )
    rim = _rgb(_mix(colours.light, (255, 255, 255), 0.3))
    if spec.light_direction == "behind":
        grow = reach
        _draw_subject(draw, spec.subject, (box[0] - grow, box[1] - grow, box[2] + grow, box[3] + grow), rim)
    else:
        _draw_subject(draw, spec.subject, _offset(box, dx, dy), rim)
    _draw_subject(draw, spec.subject, box, colours.subject)

    metadata = {
        "renderer": "sketch-v1",
        **spec.as_metadata(),
        "subject_scale": round((box[3] - box[1]) / height, 4),
        "subject_box": [round(v) for v in box],
        "subject_color": list(colours.subject),
        "light_color": list(_rgb(colours.light)),
        "sky_colors": [list(_rgb(colours.sky_top)), list(_rgb(colours.sky_bottom))],
        "reference_palette": [{"rgb": list(rgb), "weight": round(w, 4)} for rgb, w in (ref_palette or [])],
    }
    return image, metadata


class SketchGenerator:
    """The offline :class:`tools.base.ImageGenerator`: composition frames, no weights.

    Each seed is rendered independently, so a batch equals its images made alone; a 512x512
    frame takes about 20 ms on one CPU core, so the batch is a plain loop.
    """

    name = "sketch"
    model = "sketch-v1"

    def check_inputs(self, prompt: str, seeds: list[int], references: list[Image.Image]) -> None:
        if not prompt.strip():
            raise ValueError(f"`prompt` must not be empty, got {prompt!r}.")
        if not seeds:
            raise ValueError("`seeds` must hold at least one seed, got [].")
        bad = [seed for seed in seeds if not isinstance(seed, (int, np.integer)) or seed < 0]
        if bad:
            raise ValueError(f"`seeds` must be non-negative integers, got {bad!r}.")
        not_images = [i for i, ref in enumerate(references) if not isinstance(ref, Image.Image)]
        if not_images:
            raise ValueError(f"`references` must be PIL images; items {not_images} are not.")

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str,
        seeds: list[int],
        references: list[Image.Image],
        size: ImageSize,
    ) -> GenerationOutput:
        # 1. Check inputs.
        self.check_inputs(prompt, seeds, references)
        start = time.perf_counter()
        # 2. Read the prompt and the references' colours once for the whole batch.
        spec = parse_frame(prompt, negative_prompt)
        ref_palette = reference_palette(references)
        # 3. Render each seed.
        images = []
        for seed in seeds:
            image, metadata = render_frame(spec, int(seed), size, ref_palette)
            images.append(GeneratedImage(image=image, seed=int(seed), metadata={"seed": int(seed), **metadata}))
        return GenerationOutput(
            images=images,
            backend=self.name,
            model=self.model,
            elapsed_s=time.perf_counter() - start,
        )
