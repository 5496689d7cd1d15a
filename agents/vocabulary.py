"""The one cinematography vocabulary: shot types, camera angles, lenses, light, composition.

The prompt engineer's rubric, the heuristic cinematographer, reference ranking and the sketch
generator each used to keep their own word lists, and the lists disagreed ("wide angle" was a
shot to one and a lens to another). They all read ``data/vocabulary.toml`` through this module
now, so a phrase means one thing everywhere: it belongs to one entry of one kind, and each
shot type carries what every reader needs from it (the sketch's subject scale, the reference
ranking's coarse group, the cinematographer's scene class), so there is one list of shot types
and every reader's table is derived from it.

Text is read one way for everyone (``normalise``: lower case, hyphens and underscores as
spaces), and ``find_terms`` resolves overlaps across kinds by letting the longest phrase win:
"wide-angle lens" is a lens, never the start of a shot, and "overhead light" is a light, never
a camera angle.

A leaf module: it imports nothing else of ours, so ``tools`` may import it (the one import
from tools into agents that the layering allows).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from functools import cache, cached_property, lru_cache
from importlib import resources
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CameraAngle",
    "Composition",
    "DepthOfField",
    "Lens",
    "LightDirection",
    "LightSource",
    "Match",
    "Shot",
    "ShotClass",
    "ShotGroup",
    "Term",
    "View",
    "Vocabulary",
    "find_terms",
    "found",
    "longest",
    "named_shot",
    "normalise",
    "vocabulary",
]

#: Seed 003's coarse shot types, which reference ranking compares.
ShotGroup = Literal["close-up", "medium", "full-body", "wide"]
#: The kinds of scene the heuristic cinematographer shoots differently ("general": a scene
#: nothing marks out, which no shot type asks for).
ShotClass = Literal["establishing", "detail", "human", "hero", "action", "general"]
#: Seed 003's subject angle: which side of the subject faces the camera.
View = Literal["front", "side", "back", "45-degree"]


class Term(BaseModel):
    """One entry: the name readers report and the phrases (spellings, synonyms) that name it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    phrases: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _bare_word(cls, data: Any) -> Any:
        """A plain string in the file is an entry whose one phrase is its name."""
        return {"name": data, "phrases": [data]} if isinstance(data, str) else data


class Shot(Term):
    scale: float = Field(gt=0, description="Subject height / frame height in the sketch; above 1 crops the subject.")
    group: ShotGroup
    shot_class: ShotClass | None = None
    angle: str | None = Field(default=None, description="The camera angle this shot implies when none is named.")


class CameraAngle(Term):
    height: Literal["overhead", "high", "eye", "low"] | None = None
    horizon: float | None = Field(default=None, ge=0, le=1, description="Horizon height from the top, in the sketch.")
    tilt: bool = False
    view: View | None = None


class Lens(Term):
    focal_mm: int | None = Field(default=None, gt=0)
    shot: str | None = Field(default=None, description="The shot type this lens implies when none is named.")

    @property
    def label(self) -> str:
        """How the cinematographer writes this lens ("100mm macro")."""
        if self.focal_mm is None:
            raise ValueError(f"lens {self.name!r} has no `focal_mm` to write")
        return f"{self.focal_mm}mm {self.name}"


class DepthOfField(Term):
    depth: Literal["shallow", "deep"] | None = None


class LightDirection(Term):
    side: Literal["above", "below", "behind"] | None = None


class LightSource(Term):
    pass


class Composition(Term):
    guide: Literal["rule of thirds", "leading lines", "symmetry", "centered"] | None = None


T = TypeVar("T", bound=Term)


class Match(NamedTuple):
    """A phrase found in normalised text, and the entry it names."""

    term: Term
    start: int
    end: int


_SEPARATORS = re.compile(r"[-_]+")
_TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "–": "-", "—": "-"})


def normalise(text: str) -> str:
    """Lower case, typographic quotes and dashes plain, hyphens and underscores as spaces,
    single spaces: so "Close-up", "close up" and "close_up" read alike."""
    return " ".join(_SEPARATORS.sub(" ", text.lower().translate(_TYPOGRAPHY)).split())


class Vocabulary(BaseModel):
    """Everything ``data/vocabulary.toml`` holds, checked for one meaning per phrase."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shots: tuple[Shot, ...] = Field(alias="shot")
    angles: tuple[CameraAngle, ...] = Field(alias="angle")
    lenses: tuple[Lens, ...] = Field(alias="lens")
    depths_of_field: tuple[DepthOfField, ...] = Field(alias="depth_of_field")
    light_directions: tuple[LightDirection, ...] = Field(alias="light_direction")
    light_sources: tuple[LightSource, ...] = Field(alias="light_source")
    compositions: tuple[Composition, ...] = Field(alias="composition")

    @property
    def terms(self) -> tuple[Term, ...]:
        return (
            *self.shots,
            *self.angles,
            *self.lenses,
            *self.depths_of_field,
            *self.light_directions,
            *self.light_sources,
            *self.compositions,
        )

    @model_validator(mode="after")
    def _one_meaning_per_phrase(self) -> Vocabulary:
        seen: dict[str, Term] = {}
        for term in self.terms:
            for phrase in term.phrases:
                key = normalise(phrase)
                if key in seen:
                    other = seen[key]
                    raise ValueError(
                        f"phrase {phrase!r} names both {type(other).__name__} {other.name!r}"
                        f" and {type(term).__name__} {term.name!r}"
                    )
                seen[key] = term
        for kind in (self.shots, self.angles, self.lenses):
            names = [t.name for t in kind]
            if len(set(names)) != len(names):
                raise ValueError(f"names must be unique within a kind, got {names!r}")
        angle_names = {a.name for a in self.angles}
        shot_names = {s.name for s in self.shots}
        for shot in self.shots:
            if shot.angle is not None and shot.angle not in angle_names:
                raise ValueError(f"shot {shot.name!r} implies unknown angle {shot.angle!r}")
        for lens in self.lenses:
            if lens.shot is not None and lens.shot not in shot_names:
                raise ValueError(f"lens {lens.name!r} implies unknown shot {lens.shot!r}")
        return self

    @cached_property
    def _by_phrase(self) -> dict[str, Term]:
        return {normalise(phrase): term for term in self.terms for phrase in term.phrases}

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        """Every phrase at every position (a lookahead, so overlapping candidates all show)."""
        alternatives = "|".join(re.escape(p) for p in sorted(self._by_phrase, key=len, reverse=True))
        return re.compile(rf"(?<!\w)(?=({alternatives})(?!\w))")

    def shot(self, name: str) -> Shot:
        return _named(self.shots, name, "shot type")

    def angle(self, name: str) -> CameraAngle:
        return _named(self.angles, name, "camera angle")

    def lens(self, name: str) -> Lens:
        return _named(self.lenses, name, "lens")

    def matches(self, normalised: str) -> tuple[Match, ...]:
        """Non-overlapping phrases in ``normalised`` text in order of appearance; where
        candidates overlap the longest wins, then the earliest."""
        candidates = [(m.start(), m.start() + len(m.group(1)), m.group(1)) for m in self._pattern.finditer(normalised)]
        taken: list[Match] = []
        for start, end, phrase in sorted(candidates, key=lambda c: (c[0] - c[1], c[0])):
            if all(end <= t.start or start >= t.end for t in taken):
                taken.append(Match(self._by_phrase[phrase], start, end))
        return tuple(sorted(taken, key=lambda m: m.start))


def _named(terms: tuple[T, ...], name: str, what: str) -> T:
    for term in terms:
        if term.name == name:
            return term
    raise KeyError(f"unknown {what} {name!r}; data/vocabulary.toml lists {[t.name for t in terms]!r}")


@cache
def vocabulary() -> Vocabulary:
    """The vocabulary, loaded once from the package's ``data/vocabulary.toml``."""
    text = resources.files(__package__).joinpath("data", "vocabulary.toml").read_text(encoding="utf-8")
    return Vocabulary.model_validate(tomllib.loads(text))


@lru_cache(maxsize=4096)
def find_terms(text: str) -> tuple[Match, ...]:
    """Every vocabulary entry ``text`` names, as matches in its normalised form (memoised:
    each prompt is read by several readers and several passes)."""
    return vocabulary().matches(normalise(text))


def found(text: str, kind: type[T]) -> list[T]:
    """The distinct entries of ``kind`` that ``text`` names, in order of first appearance."""
    out: list[T] = []
    for match in find_terms(text):
        if isinstance(match.term, kind) and match.term not in out:
            out.append(match.term)
    return out


def longest(text: str, kind: type[T], keep: Callable[[T], bool] | None = None) -> T | None:
    """The entry of ``kind`` (that ``keep`` accepts) named by the longest phrase, then the
    earliest: "medium close-up" decides a shot over a later "close-up"."""
    best: tuple[int, int, T] | None = None
    for match in find_terms(text):
        term = match.term
        if isinstance(term, kind) and (keep is None or keep(term)):
            key = (match.start - match.end, match.start)
            if best is None or key < best[:2]:
                best = (*key, term)
    return None if best is None else best[2]


def named_shot(text: str) -> Shot | None:
    """The shot type ``text`` asks for: the one its longest shot phrase names, else the one a
    named lens implies ("macro" asks for a macro close-up), else None."""
    shot = longest(text, Shot)
    if shot is not None:
        return shot
    lens = longest(text, Lens, lambda lens: lens.shot is not None)
    return None if lens is None or lens.shot is None else vocabulary().shot(lens.shot)
