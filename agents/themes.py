"""The visual worlds a concept's few words imply: theme, place, person and time of day.

The heuristic planner and cinematographer share these so that a storyboard planned offline
and enhanced offline draws on one palette, setting and cast. The tables are data
(``data/themes.toml``, shipped with the package, so a writer can add a theme without touching
code); this module holds their models, the loading and the small pure lookups. No
randomness: choices that need variety hash the text they are about.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from functools import cache, cached_property
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Location",
    "Person",
    "Theme",
    "ThemeBook",
    "brand_words",
    "find_location",
    "find_person",
    "find_time_of_day",
    "match_theme",
    "product_phrase",
    "stable_choice",
    "theme_book",
    "tokens",
]


class Location(BaseModel):
    """A setting described for a prompt, its short name and the surface products stand on."""

    model_config = ConfigDict(frozen=True)

    description: str
    short: str
    surface: str
    props: str
    textures: tuple[str, ...] = ()
    indoor: bool = True
    preposition: str = "in"


class Theme(BaseModel):
    """The visual world a concept keyword implies. ``{product}`` is filled with the product."""

    model_config = ConfigDict(frozen=True)

    name: str
    keywords: tuple[str, ...]
    products: tuple[str, ...]
    default_product: str
    product_object: str
    product_marker: str
    finish: str
    location: Location
    palette: tuple[str, ...]
    style: str
    brand_keywords: tuple[str, ...]
    materials: tuple[str, ...]
    mood: str
    default_time: str
    role: str
    pronoun: str
    age: str
    appearance: str
    group_look: str
    detail: str
    process: str
    human_action: str
    lifestyle: str
    reaction: str
    ritual: str
    packaging: str


class Person(BaseModel):
    """The storyboard's recurring person, described concretely enough to draw twice alike."""

    model_config = ConfigDict(frozen=True)

    short: str
    full: str
    pronoun: str


class _Role(BaseModel):
    """A person word in a concept: the role it names, its pronoun (else the theme's), plural."""

    model_config = ConfigDict(frozen=True)

    words: tuple[str, ...]
    role: str
    pronoun: str | None = None
    plural: bool = False


class _Time(BaseModel):
    model_config = ConfigDict(frozen=True)

    canonical: str
    words: tuple[str, ...]


class _Place(Location):
    """A location with the words that call for it."""

    words: tuple[str, ...]


class _Words(BaseModel):
    model_config = ConfigDict(frozen=True)

    brandable: frozenset[str]
    generic: frozenset[str]
    not_product: frozenset[str]
    phrase_break: frozenset[str]


class ThemeBook(BaseModel):
    """Everything ``data/themes.toml`` holds, validated; sequences keep the file's order."""

    model_config = ConfigDict(frozen=True)

    themes: tuple[Theme, ...] = Field(alias="theme")
    fallback: Theme
    places: tuple[_Place, ...] = Field(alias="location")
    roles: tuple[_Role, ...] = Field(alias="person")
    time_words: tuple[_Time, ...] = Field(alias="time")
    words: _Words

    @cached_property
    def locations(self) -> dict[str, Location]:
        """Location word -> the setting it calls for, in file order."""
        located = {}
        for place in self.places:
            location = Location.model_validate(place.model_dump(exclude={"words"}))
            located.update(dict.fromkeys(place.words, location))
        return located

    @cached_property
    def people(self) -> dict[str, _Role]:
        return {word: role for role in self.roles for word in role.words}

    @cached_property
    def times(self) -> tuple[tuple[str, str], ...]:
        """(word, canonical time) in priority order."""
        return tuple((word, t.canonical) for t in self.time_words for word in t.words)

    @cached_property
    def products(self) -> tuple[str, ...]:
        """Every theme's products, longest first (a longer name hides a shorter one inside it)."""
        return tuple(sorted(dict.fromkeys(p for t in self.themes for p in t.products), key=len, reverse=True))


@cache
def theme_book() -> ThemeBook:
    """The themes, loaded once from the package's ``data/themes.toml``."""
    text = resources.files("imageforge.agents").joinpath("data", "themes.toml").read_text(encoding="utf-8")
    return ThemeBook.model_validate(tomllib.loads(text))


def tokens(text: str) -> list[str]:
    """Lowercase words of ``text``, hyphenated words kept whole."""
    return re.findall(r"[a-zà-ÿ0-9][a-zà-ÿ0-9'-]*", text.lower())


@cache
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """``phrase`` as a whole word or words (compiled once: the tables are matched constantly)."""
    return re.compile(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])")


def has_phrase(text: str, phrase: str) -> bool:
    return phrase_pattern(phrase).search(text) is not None


def match_theme(text: str) -> Theme:
    """The theme ``text`` mentions most (a product counts double); ties go to the earlier theme."""
    lowered = text.lower()
    book = theme_book()
    best, best_hits = book.fallback, 0
    for theme in book.themes:
        hits = sum(has_phrase(lowered, k) for k in theme.keywords) + sum(
            2 * has_phrase(lowered, p) for p in theme.products
        )
        if hits > best_hits:
            best, best_hits = theme, hits
    return best


def find_time_of_day(text: str) -> str | None:
    """The canonical time of day ``text`` names, if any (first listed wins)."""
    lowered = text.lower()
    for word, canonical in theme_book().times:
        if has_phrase(lowered, word):
            return canonical
    return None


def find_location(text: str) -> Location | None:
    """The setting for the first place ``text`` names, if it names one we know."""
    lowered = text.lower()
    found = []
    for word, location in theme_book().locations.items():
        match = phrase_pattern(word).search(lowered)
        if match:
            found.append((match.start(), location))
    return min(found, key=lambda pair: pair[0])[1] if found else None


def find_person(concept: str, theme: Theme) -> Person:
    """The person the concept names (or the theme's default), with the theme's look."""
    role, pronoun, plural = theme.role, theme.pronoun, False
    people = theme_book().people
    for word in tokens(concept):
        if word in people:
            named = people[word]
            role, pronoun, plural = named.role, named.pronoun or theme.pronoun, named.plural
            break
    article = "an" if role[0] in "aeiou" else "a"
    if plural:
        short = f"{article} {role} in their {theme.age}"
        return Person(short=short, full=f"{short}, {theme.group_look}", pronoun="their")
    short = f"{article} {role} in {pronoun} {theme.age}"
    return Person(short=short, full=f"{short} with {theme.appearance}", pronoun=pronoun)


def product_phrase(concept: str, theme: Theme) -> str:
    """The product as the concept names it ("artisan coffee"), or the theme's default.

    Looks in the concept's leading noun phrase (up to the first function word or verb, minus
    words about the ad itself) for a known product, kept with the brand-like adjectives just
    before it ("electric car" from "Electric car road trip"). A phrase that names no known
    product is used as it is unless it names the business rather than a product ("tech
    startup"), where the theme's product stands in.
    """
    words = theme_book().words
    chunk: list[str] = []
    for word in tokens(concept):
        if word in ("a", "an", "the") and not chunk:
            continue
        if word in words.phrase_break or (chunk and word.endswith("ed") and word not in words.brandable):
            break
        chunk.append(word)
    chunk = [w for w in chunk if w not in words.generic]
    text = " ".join(chunk)
    for product in theme_book().products:
        match = phrase_pattern(product).search(text)
        if match:
            before = text[: match.start()].split()
            adjectives: list[str] = []
            while before and before[-1] in words.brandable and len(adjectives) < 2:
                adjectives.insert(0, before.pop())
            return " ".join([*adjectives, product])
    if not chunk or chunk[-1] in words.not_product:
        return theme.default_product
    return " ".join(chunk[-3:])


def brand_words(concept: str, theme: Theme, limit: int = 4) -> list[str]:
    """Brand keywords: brand-like words of the concept first, then the theme's."""
    brandable = theme_book().words.brandable
    words = [w for w in tokens(concept) if w in brandable]
    for keyword in theme.brand_keywords:
        if keyword not in words:
            words.append(keyword)
    return list(dict.fromkeys(words))[:limit]


def stable_choice(options: tuple[str, ...] | list[str], *key: str) -> str:
    """One of ``options`` chosen by a hash of ``key``: varied across texts, fixed for one text."""
    digest = hashlib.sha256("\x1f".join(key).encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]
