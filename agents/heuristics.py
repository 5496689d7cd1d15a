"""Offline agents: a planner, a cinematographer and a prompt engineer made of rules.

They are the default when no LLM endpoint is configured and the fallback when an LLM's
reply cannot be parsed, so they aim to be useful on their own: the plan is concrete and
follows the concept's words, each enhancement suits its scene, and the critique names what
is missing in the same terms the cinematographer acts on (``agents.rubric``). They are
deterministic: the same inputs give the same output, and any variety comes from a hash of
the scene text.

The cinematographer decides everything at once (``agents.cinematography.plan_shot``: shot,
angle, lens, aperture, light, kelvin, composition, setting, time, palette, all suited to the
scene) and fills every structured field of its answer, but writes the prose in layers. Its
first pass states the camera and the light, as in seed 004's example; each later pass adds
what the critique's weakest dimension lacks first, then what the suggestions and the other
weak dimensions ask for, three elements at a time, so the critique loop shows (and the trace
records) how the prompt improved.
"""

from __future__ import annotations

import re

from imageforge.agents.cinematography import ShotPlan, plan_shot, warmth
from imageforge.agents.rubric import (
    DIMENSIONS,
    ELEMENT_LABELS,
    TAG_SOUP,
    VAGUE_WORDS,
    analyze_prompt,
    missing_element_keys,
    missing_elements,
    score_prompt,
)
from imageforge.agents.schemas import (
    DIMENSION_WEIGHTS,
    ConsistencyMarkers,
    Critique,
    DimensionScores,
    EnhancedPrompt,
    ScenePlan,
    StoryboardPlan,
)
from imageforge.agents.subject import Subject, check_subject, key_terms, names_term, read_subject, subject_book
from imageforge.agents.themes import (
    Location,
    Person,
    Theme,
    brand_words,
    find_location,
    find_person,
    find_time_of_day,
    has_phrase,
    match_theme,
    product_phrase,
    stable_choice,
    theme_book,
    tokens,
)

__all__ = [
    "DEFAULT_SCENES",
    "MAX_SCENES",
    "SECONDS_PER_SCENE",
    "check_plan_inputs",
    "critique_heuristic",
    "enhance_heuristic",
    "is_product_concept",
    "plan_heuristic",
    "scene_subject",
    "scenes_for_duration",
]

MAX_SCENES = 12
DEFAULT_SCENES = 4
#: One scene per 3.75 s of video: long enough to read an image, short enough to keep pace.
SECONDS_PER_SCENE = 3.75

# --- planner ------------------------------------------------------------------------------

#: Extra beats for storyboards longer than four scenes, in the order they are added.
_MIDDLE_BEATS: tuple[tuple[str, str], ...] = (
    ("build", "detail"),
    ("reveal", "human"),
    ("build", "process"),
    ("reveal", "lifestyle"),
    ("build", "texture"),
    ("reveal", "portrait"),
    ("build", "ritual"),
    ("build", "packaging"),
)
_HUMAN_KINDS = frozenset({"human", "lifestyle", "portrait", "ritual"})

_TIME_PHRASES = {
    "dawn": "at dawn",
    "morning": "in the early morning light",
    "late morning": "in bright late-morning light",
    "midday": "at midday",
    "afternoon": "in the late afternoon",
    "golden hour": "at golden hour",
    "dusk": "at dusk",
    "evening": "in the evening",
    "night": "at night",
}


def scenes_for_duration(target_duration_s: float | None) -> int:
    """About one scene per 3.75 s, at least 1 and at most 12; 4 when no duration is given."""
    if target_duration_s is None:
        return DEFAULT_SCENES
    return max(1, min(MAX_SCENES, round(target_duration_s / SECONDS_PER_SCENE)))


def _beats(n: int) -> list[tuple[str, str]]:
    """(beat, kind) per scene: hook, build, reveal, payoff, stretched or squeezed to ``n``."""
    if n == 1:
        return [("payoff", "hero")]
    if n == 2:
        return [("hook", "establish"), ("payoff", "hero")]
    middle = [_MIDDLE_BEATS[i % len(_MIDDLE_BEATS)] for i in range(n - 2)]
    return [("hook", "establish"), *middle, ("payoff", "hero")]


def _sentence_case(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:]


def _scene_prompt(
    kind: str,
    *,
    theme: Theme,
    product: str,
    location: Location,
    person: Person,
    time_phrase: str,
    tagline: str,
) -> str:
    def fill(template: str) -> str:
        return template.replace("{product}", product)

    obj = fill(theme.product_object)
    surface = location.surface

    def personal(template: str) -> str:
        return re.sub(r"\b(?:her|his)\b", person.pronoun, fill(template))

    templates = {
        "establish": (
            f"Wide establishing view of {location.description} {time_phrase}, "
            f"{location.props} beside {obj} on the {surface}"
        ),
        "detail": f"Close-up of {fill(theme.detail)}, {time_phrase}",
        "process": f"Close-up of {fill(theme.process)} on the {surface}, {time_phrase}",
        "human": (
            f"{person.short} {personal(theme.human_action)}, {location.preposition} the {location.short} {time_phrase}"
        ),
        "lifestyle": f"{person.short} {personal(theme.lifestyle)}, {time_phrase}",
        "texture": f"Extreme close-up of {theme.materials[1]} texture beside {obj}, {time_phrase}",
        "portrait": f"Close portrait of {person.short} {personal(theme.reaction)}, {time_phrase}",
        "ritual": (
            f"Over-the-shoulder view of {person.short} {personal(theme.ritual)}, "
            f"{location.preposition} the {location.short} {time_phrase}"
        ),
        "packaging": f"Detail of {fill(theme.packaging)} on the {surface}, {time_phrase}",
        "hero": f'Hero shot of {obj} on the {surface} {time_phrase}, clean space above for the line "{tagline}"',
    }
    return _sentence_case(templates[kind])


def _durations(target_duration_s: float | None, n: int) -> list[float]:
    if target_duration_s is None:
        return [0.0] * n
    each = round(target_duration_s / n, 2)
    return [each] * (n - 1) + [round(target_duration_s - each * (n - 1), 2)]


def check_plan_inputs(concept: str, target_duration_s: float | None, num_scenes: int | None) -> None:
    """Raise ValueError naming the argument when a planning request cannot be met."""
    if not isinstance(concept, str) or not concept.strip():
        raise ValueError(f"`concept` must be a non-empty description, got {concept!r}.")
    if target_duration_s is not None and not target_duration_s > 0:
        raise ValueError(f"`target_duration_s` must be positive seconds or None, got {target_duration_s}.")
    if num_scenes is not None and not 1 <= num_scenes <= MAX_SCENES:
        raise ValueError(f"`num_scenes` must be between 1 and {MAX_SCENES} or None, got {num_scenes}.")


def is_product_concept(concept: str, subject: Subject | None = None) -> bool:
    """Whether ``concept`` asks for a product advertisement rather than a story.

    It does when it names the ad ("launch", "commercial"), when its subject names a known
    product ("wireless headphones"), or when the subject is a thing that opens with a word a
    brand would use ("handmade leather wallet", "organic honey").
    """
    subject = subject or read_subject(concept)
    words = set(tokens(concept))
    if words & subject_book().words.ad_words:
        return True
    phrase = subject.phrase.lower()
    if any(has_phrase(phrase, product) for product in theme_book().products):
        return True
    first = tokens(phrase)[:1]
    return subject.kind == "thing" and bool(first) and first[0] in theme_book().words.brandable


def scene_subject(scene: ScenePlan) -> str:
    """The subject a scene's every version must name: the planner's, else the prompt's own
    (read past vague praise and tag soup, which no version keeps)."""
    return scene.subject.strip() or read_subject(_clean(scene.prompt) or scene.prompt).text


def _product_subject(prompt: str, product: str, person: Person) -> str:
    """The product where the scene shows it; else who or what the scene shows instead."""
    head = product.split()[-1]
    if names_term(prompt, head):
        return product
    role = person.short.split(" in ")[0]
    if all(names_term(prompt, t) for t in key_terms(role)):
        return role
    return read_subject(prompt).text


def plan_heuristic(
    concept: str, target_duration_s: float | None = None, num_scenes: int | None = None
) -> StoryboardPlan:
    """Plan a storyboard from the concept's own words: its subject, place, time and person."""
    # 1. Check inputs
    check_plan_inputs(concept, target_duration_s, num_scenes)

    # 2. Read the concept
    concept = concept.strip()
    n = num_scenes or scenes_for_duration(target_duration_s)
    subject = read_subject(concept)
    if not is_product_concept(concept, subject):
        return _plan_story(concept, subject, target_duration_s, n)
    theme = match_theme(concept)
    product = product_phrase(concept, theme)
    location = find_location(concept) or theme.location
    time_key = find_time_of_day(concept) or theme.default_time
    person = find_person(concept, theme)
    beats = _beats(n)

    # 3. Markers every scene shares
    has_person = any(kind in _HUMAN_KINDS for _, kind in beats)
    characters = ([person.full] if has_person else []) + [theme.product_marker.replace("{product}", product)]
    product_id = f"character_{len(characters)}"
    markers = ConsistencyMarkers(
        characters=characters,
        palette=list(theme.palette),
        setting=location.description,
        style=theme.style,
        brand_keywords=brand_words(concept, theme),
    )

    # 4. One scene per beat
    time_phrase = _TIME_PHRASES[time_key]
    tagline = _sentence_case(concept)
    scenes = []
    for number, ((beat, kind), duration) in enumerate(
        zip(beats, _durations(target_duration_s, n), strict=False), start=1
    ):
        prompt = _scene_prompt(
            kind,
            theme=theme,
            product=product,
            location=location,
            person=person,
            time_phrase=time_phrase,
            tagline=tagline,
        )
        if number > len(_MIDDLE_BEATS) + 1 and 1 < number < n:
            prompt += ", moments later"
        ids = ["character_1", product_id] if kind in _HUMAN_KINDS else [product_id]
        scenes.append(
            ScenePlan(
                scene_number=number,
                prompt=prompt,
                beat=beat,
                duration_s=duration,
                character_ids=list(dict.fromkeys(ids)),
                subject=_product_subject(prompt, product, person),
            )
        )
    return StoryboardPlan(
        concept=concept,
        target_duration_s=target_duration_s,
        scenes=scenes,
        markers=markers,
        source="heuristic",
    )


def _story_setting(concept: str, subject: Subject, named: str) -> str:
    """Where a story takes place: a place it names, else the world of its subject."""
    places, known = subject_book().words.places, theme_book().locations
    if subject.kind == "place":
        return f"{named} {subject.where}".strip()
    where = subject.where.split(" ", 1)[1] if " " in subject.where else ""
    head = where.split()[-1] if where else ""
    if head and (head.lower() in places or head.lower() in known or head[:1].isupper()):
        return where  # "in her laboratory", "am Hafen"; not "at work" or "in the rain"
    for word in tokens(concept):  # the first place the concept names
        if word in known:
            return known[word].description
        if word in places:
            return f"the {word}"
    if subject.kind == "idea":
        return "a quiet, open landscape"
    return f"the world of {named}"


def _companion(concept: str, subject: Subject) -> str:
    """A second person the concept names beside a person subject ("her grandmother"), if any."""
    if subject.kind != "person":
        return ""
    people = subject_book().words.people | set(theme_book().people)
    for word in tokens(concept):
        if word in people and word not in subject.terms and not has_phrase(subject.phrase.lower(), word):
            return word
    return ""


def _story_hook(concept: str, subject: Subject, fill: dict[str, str], template: str) -> str:
    """The opening scene: the whole concept when it is a short description that starts with its
    subject (so the story's own words, "last night before automation", are in frame), else the
    arc's hook."""
    words = tokens(concept)
    first_terms = [w for w in words[:6] if names_term(" ".join(subject.terms), w)]
    framed = bool(words) and words[0] in subject_book().words.frames  # "Portrait of ..." is no scene
    if not first_terms or framed or len(words) > 25 or subject.kind == "idea":
        return template.format(**fill)
    text = concept.rstrip(".")
    if text.split()[0].lower() in subject_book().words.determiners:
        text = text[:1].lower() + text[1:]
    time = "" if find_time_of_day(concept) else f", {fill['time']}"
    return f"Wide establishing view: {text}{time}" if subject.verb else f"Wide establishing view of {text}{time}"


def _plan_story(concept: str, subject: Subject, target_duration_s: float | None, n: int) -> StoryboardPlan:
    """A storyboard about the concept's subject: every scene names it, the beats suit its kind."""
    book = subject_book()
    arc = book.arc[subject.kind]
    named = subject.text if subject.kind != "idea" else subject.phrase.lower()
    words = named.split()
    one_common_word = len(words) == 1 and subject.kind in ("thing", "event")
    if one_common_word or (len(words) > 1 and words[1][:1].islower()):
        named = named[:1].lower() + named[1:]  # "Dragons" opened the sentence; "Chinese New Year" stays
    time_key = find_time_of_day(concept) or stable_choice(book.look.times, concept, "time")
    setting = _story_setting(concept, subject, named)
    where = f" {subject.where}" if subject.where else ""
    in_subject = any(names_term(setting, term) for term in subject.terms)
    if not where and subject.kind in ("person", "thing") and not setting.startswith("the world") and not in_subject:
        where = f" in {setting}"
    fill = {"s": named, "where": where, "time": _TIME_PHRASES[time_key]}
    companion = _companion(concept, subject)
    if companion:
        fill["s"] = f"{named} and the {companion}"  # "a girl teaches her grandmother": both in frame

    if n == 1:
        beats = [("payoff", arc.payoff)]
    else:
        middle = [arc.middle[i % len(arc.middle)] for i in range(n - 2)]
        beats = [("hook", arc.hook), *middle, ("payoff", arc.payoff)]

    theme = match_theme(concept)
    characters: list[str] = []
    if subject.kind == "person":
        look = stable_choice(book.look.looks, subject.phrase, "look")
        characters = [f"{named} with {look}"]
    elif subject.kind == "thing":
        characters = [named]
    markers = ConsistencyMarkers(
        characters=characters,
        palette=list(theme.palette if theme is not theme_book().fallback else book.look.palette),
        setting=setting,
        style=book.look.style,
        brand_keywords=[],
    )
    scenes = []
    for number, ((beat, template), duration) in enumerate(
        zip(beats, _durations(target_duration_s, n), strict=False), start=1
    ):
        text = _story_hook(concept, subject, fill, template) if beat == "hook" else template.format(**fill)
        prompt = _sentence_case(text)
        if number > len(arc.middle) + 1 and 1 < number < n:
            prompt += ", moments later"
        scenes.append(
            ScenePlan(
                scene_number=number,
                prompt=prompt,
                beat=beat,
                duration_s=duration,
                character_ids=["character_1"] if characters else [],
                subject=named,
            )
        )
    return StoryboardPlan(
        concept=concept,
        target_duration_s=target_duration_s,
        scenes=scenes,
        markers=markers,
        source="heuristic",
    )


# --- cinematographer ----------------------------------------------------------------------

#: The first pass: camera and light (like seed 004's example).
_BASE_KEYS: tuple[str, ...] = (
    "subject",
    "action",
    "shot_type",
    "camera_angle",
    "lens",
    "aperture",
    "light_source",
    "light_direction",
    "color_temperature",
)
#: What later passes add when no critique says otherwise, in this order.
_LAYER_ORDER: tuple[str, ...] = (
    "setting",
    "time_of_day",
    "composition",
    "light_angle",
    "palette",
    "mood",
    "style",
    "materials",
    "characters",
    "marker_palette",
    "brand_keywords",
    "marker_style",
    "marker_setting",
    "subject_detail",
    "production",
)
#: Elements one later pass adds: enough to move the score, few enough to show the steps.
_ADDITIONS_PER_PASS = 3

#: Words in a critique's suggestions that point at an element.
_SUGGESTION_WORDS: dict[str, tuple[str, ...]] = {
    "lens": ("lens", "focal length", "mm"),
    "aperture": ("aperture", "f/", "depth of field", "bokeh"),
    "color_temperature": ("kelvin", "colour temperature", "color temperature"),
    "light_direction": (
        "light direction",
        "key light",
        "from the left",
        "from the right",
        "backlight",
        "rim light",
    ),
    "light_source": ("light source", "window light", "softbox", "practical"),
    "light_angle": ("degrees",),
    "composition": ("composition", "rule of thirds", "leading lines", "negative space", "symmetr"),
    "shot_type": ("shot type", "close-up", "wide shot", "medium shot"),
    "camera_angle": ("camera angle", "eye-level", "low angle", "high angle", "overhead"),
    "palette": ("palette", "colour", "color"),
    "marker_palette": ("storyboard palette", "brand colo"),
    "materials": ("material", "texture"),
    "mood": ("mood", "atmosphere", "emotion"),
    "style": ("photographic style", "style"),
    "marker_style": ("storyboard style",),
    "setting": ("setting", "location", "environment"),
    "marker_setting": ("storyboard setting",),
    "time_of_day": ("time of day",),
    "brand_keywords": ("brand",),
    "characters": ("recurring", "character", "continuity"),
    "subject_detail": ("finish", "hair", "clothing", "wardrobe", "age"),
    "production": ("sharp focus", "fill light", "bounce", "copy", "production"),
}

#: Vague praise, intensifiers and tag soup: dropped from a scene's words (vague nouns such
#: as "thing" are left, since removing them would break the sentence).
_REMOVABLE = re.compile(
    r"(?<![a-z0-9])(?:"
    + "|".join(
        re.escape(term).replace(r"\ ", "[ -]").replace(r"\-", "[ -]?")
        for term in sorted(
            {*VAGUE_WORDS, *TAG_SOUP} - {"stuff", "thing", "things", "something"},
            key=len,
            reverse=True,
        )
    )
    + r")(?![a-z0-9])",
    re.IGNORECASE,
)


def _clean(text: str) -> str:
    """The text without vague praise and tag soup, which tell a model nothing.

    Quoted copy (a tagline) is left exactly as written.
    """
    parts = re.split(r"(\"[^\"]*\"|“[^”]*”)", text)
    return "".join(part if i % 2 else _clean_words(part) for i, part in enumerate(parts)).strip()


def _clean_words(text: str) -> str:
    text = _REMOVABLE.sub("", text)
    text = re.sub(r"\s+([,.;])", r"\1", text)  # no space before punctuation
    text = re.sub(r"([,;])(?:\s*[,;])+", r"\1", text)  # no doubled separators
    # "a, mug" -> "a mug"
    text = re.sub(r"\b(a|an|the)\s*[,;]\s*", r"\1 ", text, flags=re.IGNORECASE)
    text = re.sub(r"[,;]\s*(?=\.|$)", "", text)
    text = re.sub(r"^(\s*)[,;]+\s*", r"\1", text)  # no separator left at the start
    return re.sub(r"\s{2,}", " ", text)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _no_article(text: str) -> str:
    return re.sub(r"^(?:a|an|the)\s+", "", text.strip(), flags=re.IGNORECASE)


def _sentences(scene: ScenePlan, shot: ShotPlan, keys: set[str], *, with_subject: bool) -> list[str]:
    """The production brief, one sentence per group of elements, in a fixed order."""
    out: list[str] = []
    if with_subject:
        subject = _clean(scene.prompt).rstrip(".") or "The subject"
        if "action" in keys and not analyze_prompt(subject).action:
            subject = f"{subject}, {shot.action}"
        out.append(_cap(subject) + ".")
    if "characters" in keys and shot.characters:
        out.append("Continuity: " + "; ".join(shot.characters) + ".")
    elif "subject_detail" in keys:
        if shot.shot_class in ("human", "action"):
            out.append(f"Subject: {shot.person}.")
        else:
            out.append(f"Product finish: {shot.finish}.")

    camera = []
    if "camera_angle" in keys:
        angle = shot.camera_angle
        camera.append(_cap(angle) if "angle" in angle else f"{_cap(angle)} camera angle")
    if "shot_type" in keys:
        camera.append(shot.shot_type if shot.shot_type.endswith("shot") else f"{shot.shot_type} shot")
    if "lens" in keys:
        camera.append(f"{shot.lens} lens" + (f" at {shot.aperture}" if "aperture" in keys else ""))
    if "aperture" in keys:
        camera.append(shot.depth_of_field if "lens" in keys else f"{shot.aperture}, {shot.depth_of_field}")
    if camera:
        out.append(_cap(", ".join(camera)) + ".")

    light = []
    if "light_source" in keys or "light_direction" in keys:
        direction = shot.light_direction
        if "light_angle" not in keys:
            direction = re.sub(r" at \d+ degrees", "", direction)
        light.append(shot.light_source + (f" {direction}" if "light_direction" in keys else ""))
    if "color_temperature" in keys:
        light.append(f"{warmth(shot.color_temperature_k)} {shot.color_temperature_k}K colour temperature")
    if light:
        out.append(_cap(", ".join(light)) + ".")
    if "composition" in keys:
        out.append(_cap(shot.composition) + ".")

    place = []
    if "setting" in keys or "marker_setting" in keys:
        place.append(_cap(_no_article(shot.setting_detail)))
    if "time_of_day" in keys:
        place.append(shot.time_of_day)
    if place:
        out.append(_cap(", ".join(place)) + ".")
    if "materials" in keys:
        out.append("Textures: " + ", ".join(shot.materials) + ".")
    if "palette" in keys or "marker_palette" in keys:
        out.append("Colour palette: " + ", ".join(shot.palette) + ".")
    if "mood" in keys:
        out.append(f"Mood: {shot.mood}.")
    if "style" in keys or "marker_style" in keys:
        out.append(f"Style: {shot.style}.")
    if "brand_keywords" in keys and shot.brand_keywords:
        out.append("Brand cues: " + ", ".join(shot.brand_keywords) + ".")
    if "production" in keys:
        copy = ", negative space kept clear for copy" if shot.shot_class == "hero" else ""
        out.append(f"Sharp focus on {shot.focus}, white bounce fill lifting the shadows{copy}.")
    return out


def _applicable(markers: ConsistencyMarkers, shot: ShotPlan) -> tuple[str, ...]:
    """The element keys worth adding: marker keys only where the storyboard sets that marker
    (and its setting only when the scene takes place there)."""
    unset = {
        "marker_palette": not markers.palette,
        "brand_keywords": not markers.brand_keywords,
        "marker_style": not markers.style.strip(),
        "characters": not shot.characters,
        "marker_setting": not shot.in_storyboard_setting,
    }
    return tuple(k for k in _BASE_KEYS + _LAYER_ORDER if not unset.get(k, False))


def _present_keys(prompt: str, markers: ConsistencyMarkers, shot: ShotPlan) -> set[str]:
    missing = missing_element_keys(prompt, markers)
    absent = {key for keys in missing.values() for key in keys}
    return {key for key in _applicable(markers, shot) if key not in absent}


def _ranked(scores: DimensionScores) -> list[str]:
    """Dimensions from weakest to strongest, ties to the heavier weight (as ``weakest()``)."""
    values = scores.model_dump()
    return sorted(DIMENSIONS, key=lambda d: (values[d], -DIMENSION_WEIGHTS[d]))


def _suggested_keys(critique: Critique) -> list[str]:
    text = " ".join([critique.critique, *critique.suggestions]).lower()
    return [key for key, words in _SUGGESTION_WORDS.items() if any(w in text for w in words)]


def _additions(
    prompt: str,
    markers: ConsistencyMarkers,
    shot: ShotPlan,
    included: set[str],
    critique: Critique | None,
) -> tuple[list[str], str]:
    """Which elements this pass adds, and a note of which critique points they answer.

    The weakest dimension's missing elements come first, then what the suggestions name, then
    the other dimensions from weakest up, then the default layer order; at most
    ``_ADDITIONS_PER_PASS`` in all.
    """
    applicable = _applicable(markers, shot)

    def candidates(keys: list[str] | tuple[str, ...]) -> list[str]:
        return [k for k in keys if k in applicable and k not in included]

    if critique is None:
        chosen = candidates(_LAYER_ORDER)[:_ADDITIONS_PER_PASS]
        note = f"no critique given: added {_labels(chosen)}" if chosen else "no critique given"
        return chosen, note
    missing = missing_element_keys(prompt, markers)
    weakest = critique.scores.weakest()
    first = candidates(missing[weakest])[:_ADDITIONS_PER_PASS]
    queue = _suggested_keys(critique) + [k for d in _ranked(critique.scores) for k in missing[d]]
    chosen = list(first)
    for key in candidates(queue + list(_LAYER_ORDER)):
        if len(chosen) >= _ADDITIONS_PER_PASS:
            break
        if key not in chosen:
            chosen.append(key)
    score = getattr(critique.scores, weakest)
    note = f"weakest dimension {weakest} ({score:.0f}) first"
    note += f": added {_labels(first)}" if first else ": nothing left to add there"
    if chosen[len(first) :]:
        note += f"; then {_labels(chosen[len(first) :])}"
    return chosen, note


def _labels(keys: list[str]) -> str:
    return ", ".join(ELEMENT_LABELS[k] for k in keys)


def enhance_heuristic(
    scene: ScenePlan,
    markers: ConsistencyMarkers,
    *,
    previous: EnhancedPrompt | None = None,
    critique: Critique | None = None,
    iteration: int = 1,
) -> EnhancedPrompt:
    """One cinematographer pass: the first adds camera and light, later ones answer the critique."""
    if iteration < 1:
        raise ValueError(f"`iteration` counts from 1, got {iteration}.")
    shot = plan_shot(scene, markers)
    base_text = previous.prompt if previous is not None else scene.prompt
    present = _present_keys(base_text, markers, shot) if previous is not None else set()
    included = set(_BASE_KEYS) | present
    if previous is None and critique is None:
        article = "an" if shot.shot_class[0] in "aeiou" else "a"
        added: list[str] = []
        note = f"first pass: camera, lens and light for {article} {shot.shot_class} shot"
    else:
        added, note = _additions(base_text, markers, shot, included, critique)
    included |= set(added)
    if analyze_prompt(base_text).vague or analyze_prompt(base_text).tag_soup:
        note += "; removed vague words and tag soup"

    subject = scene_subject(scene)
    if previous is not None and previous.source == "llm":
        # Keep the LLM's wording; append only what it lacks, and the subject if it lost it.
        lacking = (included - present) - {"subject", "action"}
        body = _clean(previous.prompt).rstrip(".") + "."
        if not check_subject(body, subject).kept:
            body += f" In frame: {subject}."
            note += "; put the scene's subject back"
        prompt = " ".join([body, *_sentences(scene, shot, lacking, with_subject=False)])
    else:
        prompt = " ".join(_sentences(scene, shot, included, with_subject=True))
        if not check_subject(prompt, subject).kept:
            prompt = f"{_cap(subject)}: {prompt}"
    return EnhancedPrompt(
        prompt=prompt,
        negative_prompt=shot.negative_prompt,
        shot_type=shot.shot_type,
        camera_angle=shot.camera_angle,
        lens=shot.lens,
        aperture=shot.aperture,
        lighting=f"{shot.light_source} {shot.light_direction}",
        color_temperature_k=shot.color_temperature_k,
        composition=shot.composition,
        setting_detail=shot.setting_detail,
        time_of_day=shot.time_of_day,
        palette=list(shot.palette),
        addressed=note,
        source="heuristic",
    )


# --- prompt engineer ----------------------------------------------------------------------


def _suggestion(key: str, shot: ShotPlan, markers: ConsistencyMarkers, missing_keywords: list[str]) -> str | None:
    """A concrete edit for one missing element, using the values this scene calls for."""
    kelvin = f"{warmth(shot.color_temperature_k)} {shot.color_temperature_k}K"
    table = {
        "subject": "Name the subject of the frame in the first sentence.",
        "action": f"Say what the subject is doing, e.g. '{shot.action}'.",
        "setting": f"Name the location concretely: '{_no_article(shot.setting_detail)}'.",
        "time_of_day": f"Give the time of day: '{shot.time_of_day}'.",
        "shot_type": f"Name the shot type: '{shot.shot_type}'.",
        "camera_angle": f"Name the camera angle: '{shot.camera_angle}'.",
        "lens": f"Specify the lens: '{shot.lens} lens at {shot.aperture}'.",
        "aperture": f"Give the aperture and depth of field: '{shot.aperture}, {shot.depth_of_field}'.",
        "light_source": f"Name the light source: '{shot.light_source}'.",
        "light_direction": f"Say where the key light comes from: '{shot.light_direction}'.",
        "light_angle": "Give the key light's angle in degrees, e.g. 'at 45 degrees'.",
        "color_temperature": f"State the colour temperature in kelvin: '{kelvin}'.",
        "composition": f"Add a composition rule: '{shot.composition}'.",
        "palette": "Name at least three colours of the palette: " + ", ".join(shot.palette) + ".",
        "materials": "Describe materials and textures: " + ", ".join(shot.materials) + ".",
        "subject_detail": (
            f"Describe the subject concretely, as in '{shot.characters[0]}'."
            if shot.characters
            else f"Describe the subject concretely (age, hair, clothing; or the finish: '{shot.finish}')."
        ),
        "mood": f"State the mood: '{shot.mood}'.",
        "style": f"Name the photographic style: '{shot.style}'.",
        "production": (
            f"Add production notes: sharp focus on {shot.focus}, a white bounce fill, space for copy where needed."
        ),
        "marker_palette": "Use the storyboard palette by name: " + ", ".join(markers.palette) + ".",
        "brand_keywords": "Work in the brand keywords: " + ", ".join(missing_keywords) + ".",
        "marker_style": f"Match the storyboard style: '{markers.style}'.",
        "characters": (
            "Describe the recurring character or product exactly as the storyboard does: "
            f"'{(shot.characters or markers.characters or [''])[0]}'."
        ),
        "marker_setting": f"Place the scene in the storyboard setting: '{markers.setting}'.",
    }
    return table.get(key)


def critique_heuristic(enhanced: EnhancedPrompt, scene: ScenePlan, markers: ConsistencyMarkers) -> Critique:
    """Score ``enhanced`` with the rubric and say, concretely, what would raise the score.

    A version that no longer names the scene's subject fails, whatever its scores: the
    critique says so first and its first suggestion puts the subject back.
    """
    subject_check = check_subject(enhanced.prompt, scene_subject(scene))
    scores = score_prompt(enhanced.prompt, markers)
    missing_keys = missing_element_keys(enhanced.prompt, markers)
    missing_text = missing_elements(enhanced.prompt, markers)
    analysis = analyze_prompt(enhanced.prompt, markers)
    shot = plan_shot(scene, markers)
    values = scores.model_dump()
    ranked = _ranked(scores)
    weakest = ranked[0]

    # 1. The critique: weakest dimension first, then every dimension that lacks something
    parts = [f"Weakest dimension: {weakest.replace('_', ' ')} ({values[weakest]:.0f}/100)."]
    for dimension in ranked:
        if missing_text[dimension]:
            parts.append(
                f"{_cap(dimension.replace('_', ' '))} ({values[dimension]:.0f}) lacks "
                + "; ".join(missing_text[dimension])
                + "."
            )
    if len(parts) == 1:
        parts.append("Every rubric element is present; the prompt reads as a production brief.")
    if not subject_check.kept:
        parts.insert(0, f"Subject lost, so this version fails: {subject_check.detail}.")

    # 2. Suggestions: concrete edits in the same order, problems first
    suggestions: list[str] = []
    if not subject_check.kept:
        suggestions.append(f"Name the scene's subject again in the first sentence: '{subject_check.subject}'.")
    if analysis.vague:
        suggestions.append("Replace vague words (" + ", ".join(analysis.vague) + ") with concrete descriptions.")
    if analysis.conflicts:
        suggestions.append("Resolve conflicting terms: " + "; ".join(analysis.conflicts) + ".")
    if analysis.tag_soup:
        suggestions.append("Drop tag-soup terms (" + ", ".join(analysis.tag_soup) + "); describe the image instead.")
    seen: set[str] = set()
    for dimension in ranked:
        for key in missing_keys[dimension]:
            if key in seen:
                continue
            seen.add(key)
            text = _suggestion(key, shot, markers, analysis.brand_keywords_missing)
            if text:
                suggestions.append(text)
    return Critique(
        scores=scores,
        critique=" ".join(parts),
        suggestions=suggestions[:8],
        source="heuristic",
        subject_check=subject_check,
    )
