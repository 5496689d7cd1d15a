"""What a concept or a scene is about: its subject, the words that name it, and the check
that a prompt still names them.

The offline planner reads the subject from the concept's own words (any language: the word
lists in ``data/subjects.toml`` cover English, French, Spanish, German, Italian and
Portuguese function words, and a script written without spaces is kept whole), so that every
scene can name it. The enhancement loop then checks each version of a scene's prompt against
the scene's subject: a version that no longer names it has lost what the scene is about,
however well it describes the camera and the light.

"Names the subject", precisely: every key term of the subject occurs in the prompt as a whole
word, ignoring case and accents' case, where a term also matches its plural (+s, +es) and
possessive ('s) forms; text in double quotes (a tagline) does not count. A subject's key
terms are its content words, without articles, numbers and the framing words around a head
noun ("last", "old", "portrait of"); a term in a script without spaces matches as a substring.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imageforge.agents.schemas import SubjectCheck
from imageforge.agents.themes import find_time_of_day, theme_book

__all__ = [
    "Arc",
    "Look",
    "Subject",
    "SubjectKind",
    "check_subject",
    "key_terms",
    "names_term",
    "read_subject",
    "subject_book",
    "subject_words",
]

SubjectKind = Literal["person", "place", "event", "idea", "thing"]

_WORD = re.compile(r"[^\W\d_](?:[\w'’-]*\w)?|\d+")
_NO_SPACES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")
_ELISION = re.compile(r"^([ldjnmst]|qu)['’](?=\w)", re.IGNORECASE)
_POSSESSIVE = re.compile(r"(?:['’]s|s['’])$", re.IGNORECASE)
_CLAUSES = re.compile(r"[,;:()\[\]—–]|\s-\s")
_CONJUNCTIONS = frozenset({"and", "&", "et", "y", "und", "e"})
_OF = frozenset({"of", "de", "du", "des", "di", "del", "della", "von", "do", "da"})
_SPATIAL = frozenset(
    {
        "in", "at", "on", "inside", "by", "near", "over", "under", "above", "beside", "behind", "across",
        "dans", "sur", "chez", "en", "im", "am", "auf", "bei", "nel", "nella", "no", "na", "em",
    }
)  # fmt: skip
#: Words after which an English word is read as a verb ("a girl teaches her grandmother"); not
#: "a", which is a preposition in Spanish, Italian and Portuguese ("el último tren a Madrid").
_FOLLOWED_BY_OBJECT = frozenset({"the", "her", "his", "their", "its", "my", "your", "our", "all"})
_POSSESSIVES = frozenset({"her", "his", "their", "its", "my", "your", "our"})


class _Words(BaseModel):
    model_config = ConfigDict(frozen=True)

    determiners: frozenset[str]
    breaks: frozenset[str]
    openers: frozenset[str]
    frames: frozenset[str]
    verbs: frozenset[str]
    not_verbs: frozenset[str]
    people: frozenset[str]
    person_endings: tuple[str, ...]
    not_people: frozenset[str]
    places: frozenset[str]
    events: frozenset[str]
    idea_endings: tuple[str, ...]
    ideas: frozenset[str]
    common: frozenset[str]
    ad_words: frozenset[str]


class Look(BaseModel):
    """How a storyboard that is not an advertisement looks when its concept says nothing."""

    model_config = ConfigDict(frozen=True)

    palette: tuple[str, ...]
    style: str
    times: tuple[str, ...]
    looks: tuple[str, ...]


class Arc(BaseModel):
    """The beats of a storyboard about one kind of subject (templates, see subjects.toml)."""

    model_config = ConfigDict(frozen=True)

    hook: str
    payoff: str
    middle: tuple[tuple[str, str], ...]


class _Book(BaseModel):
    model_config = ConfigDict(frozen=True)

    words: _Words
    look: Look
    arc: dict[SubjectKind, Arc]


@cache
def subject_book() -> _Book:
    """The word lists, loaded once from the package's ``data/subjects.toml``."""
    text = resources.files("imageforge.agents").joinpath("data", "subjects.toml").read_text(encoding="utf-8")
    return _Book.model_validate(tomllib.loads(text))


class Subject(BaseModel):
    """A concept's subject: the phrase in its own words and how scenes should refer to it."""

    model_config = ConfigDict(frozen=True)

    phrase: str = Field(description="The subject in the concept's words, without its article.")
    article: str = Field("", description="The article a scene puts before the phrase ('the', 'la', or none).")
    terms: tuple[str, ...] = Field(description="Key terms: a prompt names the subject when it has all of them.")
    kind: SubjectKind = "thing"
    where: str = Field("", description="The concept's place phrase after the subject, e.g. 'in Taipei'.")
    verb: bool = Field(False, description="Whether a verb follows the subject ('a girl teaches ...').")

    @property
    def text(self) -> str:
        """The phrase with its article, as a scene refers to it ("the lighthouse keeper")."""
        return f"{self.article} {self.phrase}".strip()


def subject_words(text: str) -> list[str]:
    """Words of ``text`` in their own case; elisions split ("l'hiver" -> "l'", "hiver")."""
    out: list[str] = []
    for word in _WORD.findall(text):
        match = _ELISION.match(word)
        if match:
            out += [word[: match.end()], word[match.end() :]]
        else:
            out.append(word)
    return out


def _bare(word: str) -> str:
    return _POSSESSIVE.sub("", word.lower()).replace("’", "'")


def _is_verb(word: str, following: str | None, chunk: list[str]) -> bool:
    """Whether ``word`` starts the predicate after the noun phrase ``chunk``."""
    if not chunk:
        return False
    words = subject_book().words
    lower = word.lower()
    if lower in words.not_verbs or lower in words.breaks:
        return False
    if lower in words.verbs:
        return True
    if len(lower) > 4 and lower.endswith("ing"):
        return True
    if len(lower) > 3 and lower.endswith("ed"):
        return True
    if len(lower) > 5 and lower.endswith(("ando", "iendo", "endo", "indo")):
        return True
    return following is not None and following.lower() in _FOLLOWED_BY_OBJECT


def _only_frames(chunk: list[str]) -> bool:
    frames = subject_book().words.frames
    return bool(chunk) and all(_bare(w) in frames or ("-" in w and w.lower() in frames) for w in chunk)


def _phrase(words: list[str]) -> tuple[list[str], str, int]:
    """(the leading noun phrase's words, its article, the index where the phrase ended)."""
    book = subject_book().words
    chunk: list[str] = []
    article = ""
    i = 0
    while i < len(words) and not chunk and words[i].lower() in book.openers:
        i += 1
    while i < len(words):
        word, lower = words[i], words[i].lower().replace("’", "'")
        following = words[i + 1] if i + 1 < len(words) else None
        if lower in book.determiners and (not chunk or _only_frames(chunk)):
            chunk, article = [], lower  # "the day the clockmaker ...": the frame gives way
            i += 1
            continue
        if lower in _OF and _only_frames(chunk):
            chunk = []  # "the final voyage of a boat" is about the boat
            i += 1
            continue
        joins = following is not None and (following.lower() not in book.breaks or following.lower() in _POSSESSIVES)
        if lower in _CONJUNCTIONS and chunk and joins:
            chunk.append(word)  # "a fox and a crow", "a boy and his kite"
            i += 1
            continue
        if chunk and chunk[-1].lower() in _CONJUNCTIONS and (lower in book.determiners or lower in _POSSESSIVES):
            chunk.append(word)  # the article or possessive of the second noun
            i += 1
            continue
        if lower in book.breaks or (lower in book.openers and chunk) or _is_verb(word, following, chunk):
            break
        if lower in book.determiners and chunk:
            break  # "el último tren a Madrid": "a" is a preposition there
        chunk.append(word)
        i += 1
        if _POSSESSIVE.search(word) and len(word) > 2:
            rest = []
            for later in words[i:]:
                if later.lower() in book.breaks or later.lower() in book.determiners:
                    break
                rest.append(later)
            if rest and _only_frames(rest):  # "a keeper's last night": the keeper
                chunk[-1] = word[:-2]
                return chunk, article, i + len(rest)
    while chunk and (chunk[-1].lower() in _CONJUNCTIONS or chunk[-1].lower() in book.determiners):
        chunk.pop()
    return chunk, article, i


def key_terms(phrase: str) -> tuple[str, ...]:
    """The words a prompt must keep to still name ``phrase``: its content words, lowercase."""
    if _NO_SPACES.search(phrase) and " " not in phrase.strip():
        return (phrase.strip(),)
    book = subject_book().words
    words = [_bare(w) for w in subject_words(phrase)]
    skip = book.determiners | book.breaks | book.frames | _CONJUNCTIONS | _OF
    terms = [w for w in words if w not in skip and not w.isdigit() and len(w) > 1]
    return tuple(dict.fromkeys(terms or [w for w in words if not w.isdigit()]))


def _kind(phrase_words: list[str], clause_start: bool) -> SubjectKind:
    book = subject_book().words
    words = [_bare(w) for w in phrase_words]
    for i, word in enumerate(words):  # "an old man and the sea" is about the man
        if word in _CONJUNCTIONS and i:
            words, phrase_words = words[:i], phrase_words[:i]
            break
    head = words[-1] if words else ""
    singular = head[:-1] if head.endswith("s") and len(head) > 3 else head
    phrase = " ".join(words)
    people = book.people | set(theme_book().people)
    capitalised = [w[:1].isupper() for w in phrase_words]
    if len(phrase_words) >= 2 and all(capitalised):
        return "person"  # a name: "Marie Curie"
    if head in people or singular in people:
        return "person"
    if any(phrase.endswith(p) for p in book.places | set(theme_book().locations)):
        return "place"
    if head in book.events or any(phrase.endswith(e) for e in book.events if " " in e):
        return "event"
    if head in book.ideas or (len(head) > 5 and head.endswith(book.idea_endings)):
        return "idea"
    if (
        len(singular) > 4
        and singular.endswith(book.person_endings)
        and singular not in book.not_people
        and head not in book.not_people
    ):
        return "person"
    if len(phrase_words) == 1 and capitalised[0] and (not clause_start or not head.endswith("s")):
        return "place"  # a proper name mid-sentence, or a lone name such as "Tokyo"
    return "thing"


def _where(words: list[str], start: int) -> str:
    """The place phrase after the subject ("in Taipei", "in her laboratory"), if any."""
    book = subject_book().words
    for i in range(start, len(words)):
        if words[i].lower() not in _SPATIAL:
            continue
        phrase = [words[i]]
        for word in words[i + 1 :]:
            lower = word.lower()
            if (lower in book.breaks and lower not in _FOLLOWED_BY_OBJECT) or lower in book.verbs:
                break
            phrase.append(word)
            if len(phrase) > 5:
                break
        if len(phrase) > 1 and find_time_of_day(" ".join(phrase)) is None:
            return " ".join(phrase)
    return ""


def read_subject(concept: str) -> Subject:
    """The subject of ``concept``: its leading noun phrase, past framing words and a leading
    place or time clause ("In a small town, an old violin maker ..." is about the maker)."""
    text = _QUOTED.sub(" ", concept).strip() or concept.strip()
    if _NO_SPACES.search(text) and " " not in text.strip():
        return Subject(phrase=text.strip(), terms=(text.strip(),), kind="thing")
    book = subject_book().words
    clauses = [c for c in _CLAUSES.split(text) if subject_words(c)]
    chosen: tuple[list[str], str, int, list[str]] | None = None
    for clause in clauses:
        words = subject_words(clause)
        first = words[0].lower()
        if first in book.breaks and first not in _OF and first not in book.determiners:
            continue  # "In a small coastal town ...": a setting, not the subject
        chunk, article, end = _phrase(words)
        if chunk:
            chosen = (chunk, article, end, words)
            break
    if chosen is None:
        words = subject_words(clauses[0] if clauses else text)
        chunk, article, end = _phrase(words[1:]) if len(words) > 1 else (words, "", len(words))
        chosen = (chunk or words, article, end + 1, words)
    chunk, article, end, words = chosen
    if article in ("a", "an", "one", "some"):
        article = "the"
    elif article in ("two", "three", "four", "five", "many"):
        chunk = [article, *chunk]
        article = ""
    if chunk and chunk[0] == words[0] and _common(chunk[0]):
        chunk = [chunk[0].lower(), *chunk[1:]]  # "Mother and daughter ...": the sentence's capital
    if article == "the":  # "a fox and a crow" -> "the fox and the crow"
        chunk = ["the" if w.lower() in ("a", "an") else w for w in chunk]
    phrase = " ".join(chunk)
    kind = _kind(chunk, clause_start=chunk[0] == words[0] if chunk else True)
    head = chunk[-1] if chunk else ""
    common_noun = head[:1].islower() and not head.lower().endswith("s") and not _POSSESSIVE.search(phrase)
    if not article and kind in ("person", "thing") and common_noun and "'" not in phrase and "’" not in phrase:
        article = "the"  # "Cyberpunk street food vendor" -> "the Cyberpunk street food vendor"
    return Subject(
        phrase=phrase,
        article=article,
        terms=key_terms(phrase),
        kind=kind,
        where=_where(words, end),
        verb=end < len(words) and _is_verb(words[end], words[end + 1] if end + 1 < len(words) else None, chunk),
    )


def _common(word: str) -> bool:
    """Whether ``word`` is a common noun the word lists know (its capital is the sentence's)."""
    book, themes = subject_book().words, theme_book()
    lower = _bare(word)
    known = book.people | book.places | book.events | book.ideas | book.common | book.frames
    return (
        lower in known
        or lower in themes.people
        or lower in themes.locations
        or lower in themes.products
        or any(lower == w for w, _ in themes.times)
    )


def names_term(text: str, term: str) -> bool:
    """Whether ``text`` has ``term`` as a whole word (or its plural or possessive)."""
    if _NO_SPACES.search(term):
        return term in text
    pattern = rf"(?<!\w){re.escape(term.lower())}(?:s|es|['’]s)?(?!\w)"
    return re.search(pattern, text.lower()) is not None


def check_subject(prompt: str, subject: str) -> SubjectCheck:
    """Whether ``prompt`` still names ``subject`` (see the module's definition)."""
    terms = key_terms(subject)
    described = _QUOTED.sub(" ", prompt)
    missing = [t for t in terms if not names_term(described, t)]
    if missing:
        detail = f"the prompt no longer names the scene's subject '{subject}': missing " + ", ".join(
            f"'{t}'" for t in missing
        )
    else:
        detail = f"the prompt names the scene's subject '{subject}'"
    return SubjectCheck(subject=subject, terms=list(terms), missing=missing, kept=not missing, detail=detail)
