"""The heuristic cinematographer's decisions: which camera, lens and light suit a scene.

Pure functions of the scene text and the storyboard markers. A product detail beat gets a
macro lens, an establishing beat a wide lens stopped down, a night scene warm practicals, a
morning interior window light from the left. Where two choices suit a scene equally, a hash
of the scene text picks one, so the same scene always gets the same shot and neighbouring
scenes of a storyboard do not all look alike.

Shot types, angles and lenses come from the shared vocabulary (``agents.vocabulary``), so a
scene that asks for a "wide angle" gets a wide lens (not an establishing shot), and every shot
written here is one the rubric, the reference ranking and the sketch read the same way. How
each time of day is lit is data, in ``data/lighting.toml``.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from imageforge.agents.schemas import ConsistencyMarkers, ScenePlan
from imageforge.agents.themes import (
    Location,
    Theme,
    find_location,
    find_person,
    find_time_of_day,
    has_phrase,
    match_theme,
    stable_choice,
)
from imageforge.agents.vocabulary import CameraAngle, Lens, Shot, ShotClass, found, longest, vocabulary

__all__ = ["Lighting", "ShotClass", "ShotPlan", "classify_scene", "lighting", "plan_shot", "warmth"]

#: What a shot or lens named in the scene adds to the class it asks for (a scene word adds 1).
_NAMED_SHOT_WEIGHT = 4

# Scene words (not camera words: those come from the vocabulary) that hint at a class.
# fmt: off
_CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "establishing": (
        "exterior", "skyline", "landscape", "overview", "vista", "view of",
    ),
    "detail": (
        "detail", "texture", "pour", "pouring", "poured", "crema",
        "droplets", "drop", "label", "dial", "beans", "grain", "steam", "ingredients", "fabric",
        "packaging", "stitching", "hands", "fingertips", "fingers",
    ),
    "human": (
        "woman", "man", "person", "people", "she", "he", "her", "his", "barista", "chef", "athlete",
        "family", "friends", "couple", "customer", "professional", "runner", "hiker", "driver",
        "designer", "student", "portrait", "smiles", "smiling", "sips", "laughs", "face",
    ),
    "hero": (
        "hero", "logo", "tagline", "call to action", "lineup", "showcase", "space for", "the line",
    ),
    "action": (
        "running", "sprints", "sprinting", "jumping", "dancing", "driving", "riding", "cycling",
        "skating", "surfing", "racing", "steers",
    ),
}
_BEAT_HINTS: dict[str, tuple[str, int]] = {
    "hook": ("establishing", 2),
    "establish": ("establishing", 2),
    "build": ("detail", 1),
    "detail": ("detail", 2),
    "reveal": ("human", 1),
    "human": ("human", 2),
    "payoff": ("hero", 2),
    "call to action": ("hero", 2),
    "cta": ("hero", 2),
}
_PRODUCT_NOUNS = (
    "mug", "cup", "bottle", "watch", "phone", "smartphone", "laptop", "shoe", "shoes", "sneakers",
    "perfume", "jar", "box", "bag", "backpack", "headphones", "can", "glass", "serum", "car",
    "pizza", "product",
)

_INDOOR = (
    "kitchen", "café", "cafe", "office", "studio", "interior", "room", "bar", "gym", "boutique",
    "bathroom", "loft", "apartment", "home", "restaurant", "bakery", "shop", "store", "lobby",
    "vanity", "counter", "desk", "window",
)
_OUTDOOR = (
    "street", "city", "forest", "beach", "mountain", "trail", "road", "park", "garden", "field",
    "lake", "coast", "rooftop", "terrace", "desert", "meadow", "ridge", "outdoors", "sky",
)
# fmt: on


class Lighting(BaseModel):
    """How one time of day is lit indoors and outdoors; ``{side}`` is filled per scene."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    indoor_source: str
    indoor_direction: str
    outdoor_source: str
    outdoor_direction: str
    kelvins: tuple[int, ...]


@cache
def lighting() -> dict[str, Lighting]:
    """Time key -> its lighting, loaded once from the package's ``data/lighting.toml``."""
    text = resources.files("imageforge.agents").joinpath("data", "lighting.toml").read_text(encoding="utf-8")
    return {key: Lighting.model_validate(value) for key, value in tomllib.loads(text).items()}


class ShotPlan(BaseModel):
    """Every decision the heuristic cinematographer makes for one scene."""

    model_config = ConfigDict(frozen=True)

    shot_class: ShotClass
    shot_type: str
    camera_angle: str
    lens: str
    aperture: str
    depth_of_field: str
    light_source: str
    light_direction: str
    color_temperature_k: int
    composition: str
    location: Location
    in_storyboard_setting: bool
    time_key: str
    time_of_day: str
    setting_detail: str
    palette: list[str]
    materials: list[str]
    finish: str
    person: str
    mood: str
    style: str
    focus: str
    action: str
    characters: list[str]
    brand_keywords: list[str]
    negative_prompt: str


def warmth(kelvin: int) -> str:
    """How a colour temperature reads, in the words a gaffer would use."""
    if kelvin < 3800:
        return "warm"
    if kelvin < 5000:
        return "neutral-warm"
    if kelvin <= 6000:
        return "neutral daylight"
    return "cool"


def _named_shots(text: str) -> list[Shot]:
    """Shot types the text names, plus the shot a named lens implies ("macro" -> macro close-up)."""
    shots = found(text, Shot)
    for lens in found(text, Lens):
        if lens.shot is not None and vocabulary().shot(lens.shot) not in shots:
            shots.append(vocabulary().shot(lens.shot))
    return shots


def classify_scene(text: str, beat: str = "") -> ShotClass:
    """The kind of shot a scene calls for, from its words and (as a hint) its beat."""
    lowered, beat = text.lower(), beat.lower()
    scores = {name: sum(has_phrase(lowered, w) for w in words) for name, words in _CLASS_WORDS.items()}
    scores["detail"] += any(has_phrase(lowered, p) for p in _PRODUCT_NOUNS) and scores["human"] == 0
    asked: set[ShotClass] = set()
    for shot in _named_shots(text):
        if shot.shot_class is None:
            continue
        close_up_of_a_person = shot.group == "close-up" and scores["human"] and "hands" not in lowered
        asked.add("human" if shot.shot_class == "detail" and close_up_of_a_person else shot.shot_class)
    for shot_class in asked:
        scores[shot_class] += _NAMED_SHOT_WEIGHT
    for word, (name, weight) in _BEAT_HINTS.items():
        if has_phrase(beat, word):
            scores[name] += weight
    best = max(scores.values())
    if best == 0:
        return "general"
    order: tuple[ShotClass, ...] = ("hero", "establishing", "detail", "action", "human")
    return next(name for name in order if scores[name] == best)


def _focus(text: str, theme: Theme) -> str:
    lowered = text.lower()
    for noun in _PRODUCT_NOUNS + theme.products:
        if has_phrase(lowered, noun):
            return f"the {noun}"
    return "the subject"


def _indoor(text: str, location: Location) -> bool:
    lowered = text.lower()
    indoor = sum(has_phrase(lowered, w) for w in _INDOOR)
    outdoor = sum(has_phrase(lowered, w) for w in _OUTDOOR)
    if indoor != outdoor:
        return indoor > outdoor
    return location.indoor


def _time_key(text: str, markers_text: str, shot_class: ShotClass) -> str:
    named = find_time_of_day(text)
    if named is not None:
        return named
    lowered = text.lower()
    if has_phrase(lowered, "late night") or has_phrase(lowered, "neon"):
        return "night"
    if shot_class in ("detail", "hero"):
        return "studio"
    return find_time_of_day(markers_text) or stable_choice(("late morning", "afternoon"), text, "time")


def _camera(shot_class: ShotClass, text: str, focus: str) -> tuple[str, str, str, str, str, str]:
    """(shot type, camera angle, lens, aperture, depth of field, composition).

    The class decides; a lens the scene names with a focal length ("wide angle") is honoured.
    """
    shot, angle, lens, aperture, dof, composition = _class_camera(shot_class, text, focus)
    named = longest(text, Lens, lambda lens: lens.focal_mm is not None)
    return shot, angle, named.label if named else lens, aperture, dof, composition


def _overhead(text: str) -> bool:
    """Whether the scene is seen from straight above (a named angle, or a flat lay)."""
    shots = found(text, Shot)
    angles = found(text, CameraAngle) + [vocabulary().angle(s.angle) for s in shots if s.angle]
    lowered = text.lower()
    return any(a.height == "overhead" for a in angles) or any(has_phrase(lowered, w) for w in ("spread", "from above"))


def _class_camera(shot_class: ShotClass, text: str, focus: str) -> tuple[str, str, str, str, str, str]:
    lowered = text.lower()

    def pick(options: tuple[str, ...], salt: str) -> str:
        return stable_choice(options, text, salt)

    if shot_class == "establishing":
        return (
            "wide establishing shot",
            pick(("high angle", "eye-level"), "angle"),
            "24mm",
            "f/8",
            "deep depth of field",
            pick(
                (
                    f"leading lines drawing the eye to {focus}, horizon on the upper third",
                    f"rule of thirds, horizon on the lower third and {focus} on the right third",
                ),
                "comp",
            ),
        )
    if shot_class == "detail":
        return (
            "macro close-up",
            "top-down" if _overhead(text) else pick(("high angle", "eye-level"), "angle"),
            vocabulary().lens("macro").label,
            "f/2.8",
            "shallow depth of field",
            pick(
                (
                    f"centered composition on {focus} with generous negative space",
                    f"diagonal composition following {focus} from lower left to upper right",
                ),
                "comp",
            ),
        )
    if shot_class == "human":
        close = has_phrase(lowered, "portrait") or has_phrase(lowered, "face")
        over = vocabulary().shot("over-the-shoulder shot") in found(text, Shot)
        side = pick(("left", "right"), "side")
        other = "right" if side == "left" else "left"
        shot = "over-the-shoulder shot" if over else "close-up" if close else "medium close-up"
        return (
            shot,
            "eye-level",
            pick(("85mm", "50mm"), "lens") if not over else "50mm",
            pick(("f/1.8", "f/2"), "aperture"),
            "shallow depth of field",
            f"rule of thirds, subject on the {side} third looking into open space on the {other}",
        )
    if shot_class == "hero":
        return (
            "hero product shot",
            "low angle",
            "50mm",
            "f/4",
            "soft background falloff",
            f"symmetrical centered composition on {focus} with negative space above for the tagline",
        )
    if shot_class == "action":
        return (
            "full shot",
            "low angle",
            "35mm",
            "f/2.8",
            "subject sharp against a soft background",
            "leading lines, subject moving into open space on the right third",
        )
    return (
        "medium shot",
        "eye-level",
        "35mm",
        "f/4",
        "moderate depth of field",
        f"rule of thirds with {focus} on the left third",
    )


def _negative(shot_class: ShotClass, time_key: str) -> str:
    parts = [
        "blurry",
        "out of focus subject",
        "watermark",
        "text artifacts",
        "distorted perspective",
        "oversaturated colours",
        "cluttered background",
        "low resolution",
    ]
    if shot_class in ("human", "action"):
        parts += ["extra fingers", "distorted hands", "asymmetrical eyes", "plastic skin"]
    if shot_class in ("detail", "hero"):
        parts += ["dust", "fingerprints", "smudges", "warped reflections"]
    if shot_class == "establishing":
        parts += ["tilted horizon", "fisheye distortion"]
    if time_key in ("night", "evening", "dusk"):
        parts += ["daylight", "blown-out highlights", "heavy noise"]
    elif time_key != "studio":
        parts += ["night sky", "harsh flash"]
    return ", ".join(parts)


def _scene_characters(scene: ScenePlan, markers: ConsistencyMarkers, shot_class: ShotClass) -> list[str]:
    """The marker characters this scene shows: by id, else by shared words, else the first."""
    chosen: list[str] = []
    for cid in scene.character_ids:
        match = re.fullmatch(r"character_(\d+)", cid)
        if match and 1 <= int(match.group(1)) <= len(markers.characters):
            chosen.append(markers.characters[int(match.group(1)) - 1])
    if chosen or not markers.characters:
        return chosen
    scene_words = set(re.findall(r"[a-z]{4,}", scene.prompt.lower()))
    overlapping = [c for c in markers.characters if scene_words & set(re.findall(r"[a-z]{4,}", c.lower()))]
    if overlapping:
        return overlapping[:2]
    return markers.characters[:1] if shot_class in ("human", "action") else []


def _place(scene: ScenePlan, markers: ConsistencyMarkers, theme: Theme) -> tuple[Location, str, bool]:
    """(location, setting description, whether it is the storyboard's setting).

    The storyboard's setting holds unless the scene names a different place of its own.
    """
    own = find_location(scene.prompt)
    if markers.setting.strip():
        marker_location = find_location(markers.setting)
        if own is None or own == marker_location or own.short.lower() in markers.setting.lower():
            # A setting no table knows (a lighthouse, a laboratory) is described as written,
            # without another place's props.
            unknown = Location(description=markers.setting.strip(), short=markers.setting.strip(), surface="", props="")
            return marker_location or own or unknown, markers.setting.strip(), True
    location = own or theme.location
    return location, location.description, False


def plan_shot(scene: ScenePlan, markers: ConsistencyMarkers) -> ShotPlan:
    """Decide camera, lens, light, composition, setting, time and palette for one scene."""
    markers_text = " ".join(
        [
            markers.setting,
            markers.style,
            *markers.palette,
            *markers.brand_keywords,
            *markers.characters,
        ]
    )
    theme = match_theme(f"{scene.prompt} {markers_text}")
    shot_class = classify_scene(scene.prompt, scene.beat)
    location, setting, in_storyboard_setting = _place(scene, markers, theme)
    focus = _focus(scene.prompt, theme)
    shot_type, angle, lens, aperture, dof, composition = _camera(shot_class, scene.prompt, focus)

    time_key = _time_key(scene.prompt, markers_text, shot_class)
    light = lighting()[time_key]
    indoor = _indoor(f"{scene.prompt} {markers.setting}", location)
    side = stable_choice(("left", "right"), scene.prompt, "light side")
    light_source = light.indoor_source if indoor else light.outdoor_source
    light_direction = (light.indoor_direction if indoor else light.outdoor_direction).format(side=side)
    kelvin = int(stable_choice(tuple(str(k) for k in light.kelvins), scene.prompt, "kelvin"))

    surface = location.surface
    on_surface = f" on the {surface}" if surface and shot_class in ("detail", "hero") and location.indoor else ""
    setting_detail = ", ".join(part for part in (setting, f"{location.props}{on_surface}".strip()) if part)
    palette = list(markers.palette) or list(theme.palette)
    if len(palette) < 3:
        palette += [c for c in theme.palette if c not in palette][: 3 - len(palette)]
    action = {
        "establishing": "coming to life as the light changes",
        "human": "looking toward the light",
        "action": "moving through the frame",
    }.get(shot_class, "standing upright, turned slightly toward the camera")
    return ShotPlan(
        shot_class=shot_class,
        shot_type=shot_type,
        camera_angle=angle,
        lens=lens,
        aperture=aperture,
        depth_of_field=dof,
        light_source=light_source,
        light_direction=light_direction,
        color_temperature_k=kelvin,
        composition=composition,
        location=location,
        in_storyboard_setting=in_storyboard_setting,
        time_key=time_key,
        time_of_day=light.label,
        setting_detail=setting_detail,
        palette=palette,
        materials=list(
            theme.materials
            if in_storyboard_setting or location is theme.location
            else location.textures or theme.materials
        ),
        finish=theme.finish,
        person=find_person(scene.prompt, theme).full,
        mood=theme.mood,
        style=markers.style.strip() or theme.style,
        focus=focus,
        action=action,
        characters=_scene_characters(scene, markers, shot_class),
        brand_keywords=list(markers.brand_keywords),
        negative_prompt=_negative(shot_class, time_key),
    )
