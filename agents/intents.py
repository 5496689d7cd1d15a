"""The offline assistant's "model": a deterministic parser from a message to tool calls.

With no chat model configured, the assistant graph still runs its model node; this parser
answers there, producing the same tool calls (names and arguments of
``agents.assistant``'s schemas) that an LLM would, so both paths share the tools, the
checkpointed memory and the replies. Everything here is a pure function of the text.

What it understands, in order of precedence:

1. explain a winner: "why did image 3 win in scene 1?", "explain the winner of scene 2";
2. refine a scene: "make scene 2 moodier, at night", "redo the third scene with 8 variations";
3. start a storyboard: "make a 15 second storyboard about artisan coffee" (a duration, a scene
   count and explicit settings such as "with 6 variations" or "in 4:5" are picked out of the
   description);
4. change settings: "use 6 variations", "be stricter", "no more than 2 iterations",
   "4:5 portrait", "seed 42", "settings" (shows them), possibly with a status question;
5. report status: "how is it going?";
6. help ("what can you do?"), else unknown: the caller answers with the capabilities.

Numbers may be digits or words ("six", "twenty-five"), scenes and images ordinals too
("the second scene"). Values are passed on as given, even out of range: the tools check
ranges and explain them. A count that comes out negative ("no more than -3 iterations",
"minus two retries", "0 attempts") is not guessed at (dropping the sign would read it as 3):
the parser asks back instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from imageforge.agents.assistant import ToolName

__all__ = ["ParsedMessage", "ToolRequest", "parse_message", "parse_number", "parse_ordinal"]

_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]


def _alternation(words: list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_WORD_NUM = rf"(?:(?:{_alternation(list(_TENS))})(?:[- ](?:{_alternation(_UNITS[1:10])}))?|{_alternation(_UNITS)})"
NUM = rf"(?:\d+(?:\.\d+)?|{_WORD_NUM})"
ORD = rf"(?:{_alternation(_ORDINALS)}|\d+(?:st|nd|rd|th))"


def parse_number(text: str) -> int | float | None:
    """``"6"`` -> 6, ``"six"`` -> 6, ``"twenty-five"`` -> 25, ``"2.5"`` -> 2.5; None otherwise."""
    word = " ".join(text.strip().lower().replace("-", " ").split())
    if re.fullmatch(r"\d+", word):
        return int(word)
    if re.fullmatch(r"\d+\.\d+", word):
        value = float(word)
        return int(value) if value.is_integer() else value
    if word in _UNITS:
        return _UNITS.index(word)
    parts = word.split()
    if parts and parts[0] in _TENS:
        if len(parts) == 1:
            return _TENS[parts[0]]
        if len(parts) == 2 and parts[1] in _UNITS[1:10]:
            return _TENS[parts[0]] + _UNITS.index(parts[1])
    return None


def parse_ordinal(text: str) -> int | None:
    """``"second"`` -> 2, ``"3rd"`` -> 3; None otherwise."""
    word = text.strip().lower()
    if word in _ORDINALS:
        return _ORDINALS.index(word) + 1
    match = re.fullmatch(r"(\d+)(?:st|nd|rd|th)", word)
    return int(match.group(1)) if match else None


class ToolRequest(BaseModel):
    """One tool call the parser asks for: a tool name and its arguments."""

    name: ToolName
    args: dict[str, Any] = Field(default_factory=dict)


class ParsedMessage(BaseModel):
    """``tools``: call ``calls`` in order; ``clarify``: ask ``question``; ``help`` / ``unknown``:
    answer with what the assistant can do."""

    kind: Literal["tools", "clarify", "help", "unknown"]
    calls: list[ToolRequest] = Field(default_factory=list)
    question: str | None = None


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# References to scenes and images --------------------------------------------------------------
_SCENE_REF = _compile(rf"\bscene\s*(?:number\s*|no\.?\s*|#\s*)?(?P<n>{NUM})\b|\b(?P<o>{ORD})\s+scene\b")
_IMAGE_WORDS = r"(?:image|img|variation|variant|picture|pic|candidate|option|photo)"
_IMAGE_REF = _compile(
    rf"\b{_IMAGE_WORDS}\s*(?:number\s*|no\.?\s*|#\s*|_)?(?P<n>{NUM})\b|\b(?P<o>{ORD})\s+{_IMAGE_WORDS}\b|#(?P<h>\d+)\b"
)


def _ref_value(match: re.Match[str]) -> int | None:
    groups = match.groupdict()
    if groups.get("n"):
        value = parse_number(groups["n"])
        return int(value) if isinstance(value, int) else None
    if groups.get("o"):
        return parse_ordinal(groups["o"])
    if groups.get("h"):
        return int(groups["h"])
    return None


# Settings -----------------------------------------------------------------------------------
_LEAD = (
    r"(?:(?:please\s+)?(?:use|with|at\s+most|no\s+more\s+than|not\s+more\s+than|up\s+to|max(?:imum)?(?:\s+of)?"
    r"|only|just|limit(?:\s+it)?\s+to|set(?:\s+it)?\s+to|try|make\s+it|give\s+me|and|in|at|as)\s+)*"
)
_SET = r"\s*(?:to|=|:|of|at|at\s+least|above|over|>=|>)?\s*(?:[-\u2212]\s*)?"  # a sign: see _number_of

SettingsHandler = Callable[[re.Match[str]], dict[str, Any]]


#: A minus sign (not a hyphen inside "2-3" or "twenty-five") or the word, right before a number.
_NEGATIVE = re.compile(r"(?:(?<![\w.])[-\u2212\u2013]\s*|\b(?:minus|negative)\s+)$", re.IGNORECASE)


def _number_of(match: re.Match[str]) -> int | float:
    """The number in group ``n``, negative when a minus sign or "minus" stands before it."""
    value = parse_number(match.group("n"))
    if value is None:  # the patterns only capture NUM, which always parses
        raise ValueError(f"`match` holds no number: {match.group(0)!r}")
    return -value if _NEGATIVE.search(match.string[: match.start("n")]) else value


#: What each count is called when the parser asks back about it.
_COUNT_LABELS = {
    "num_variations": "variations per scene",
    "max_enhancement_iterations": "enhancement iterations",
    "max_retries": "retries",
    "consistency_threshold": "consistency threshold",
    "quality_threshold": "quality threshold",
    "approval_threshold": "approval threshold",
}


class _Unclear(Exception):
    """A message the parser will not guess at; the message is the question to ask back."""


def _check_counts(changes: dict[str, Any]) -> None:
    for name, label in _COUNT_LABELS.items():
        value = changes.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            question = (
                f"What {label} (0 to 100) do you want?"
                if name.endswith("_threshold")
                else f"How many {'attempts per scene' if name == 'max_retries' else label} do you want?"
            )
            raise _Unclear(
                f"That would make the {label} {value:g}, which can't be below zero, so I changed nothing. {question}"
            )


def _ratio(match: re.Match[str]) -> dict[str, Any]:
    a, b = int(match.group("a")), int(match.group("b"))
    named = {(1, 1): "square", (16, 9): "16:9", (4, 5): "4:5", (21, 9): "21:9"}
    return {"aspect_ratio": named.get((a, b), f"{a}:{b}")}


_KNOWN_RATIO = r"(?P<a>1|16|4|21)\s*:\s*(?P<b>1|9|5)"
_RATIO_SUFFIX = r"(?:\s+(?:portrait|landscape|vertical|horizontal|square|format|aspect(?:\s+ratio)?|ratio|frames?))?"
_ASPECT_WORDS = {
    "square": "square",
    "portrait": "4:5",
    "vertical": "4:5",
    "instagram": "4:5",
    "landscape": "16:9",
    "widescreen": "16:9",
    "wide-screen": "16:9",
    "horizontal": "16:9",
    "cinematic": "21:9",
    "cinemascope": "21:9",
    "ultrawide": "21:9",
    "ultra-wide": "21:9",
    "anamorphic": "21:9",
}
_ASPECT_ALT = _alternation(list(_ASPECT_WORDS))


def _aspect_word(match: re.Match[str]) -> dict[str, Any]:
    return {"aspect_ratio": _ASPECT_WORDS[match.group("w").lower()]}


#: (pattern, loose only, handler). Loose patterns apply only when the whole message is about
#: settings; inside a storyboard description ("a portrait of a strict teacher") they would
#: misread the subject. Earlier patterns win over later ones on the same words.
_SETTINGS: list[tuple[re.Pattern[str], bool, SettingsHandler]] = [
    # strictness
    (
        _compile(
            r"\b(?:be\s+)?(?:more\s+lenient|less\s+strict|more\s+forgiving|looser|relax(?:ed)?(?:\s+the\s+thresholds?)?|go\s+easy|lower\s+the\s+bar)\b"
        ),
        False,
        lambda m: {"adjust": "more_lenient"},
    ),
    (
        _compile(
            r"\b(?:be\s+)?(?:stricter|more\s+strict|tougher|more\s+demanding|pickier|more\s+picky|raise\s+the\s+bar)\b"
        ),
        False,
        lambda m: {"adjust": "stricter"},
    ),
    (
        _compile(
            r"\b(?:turn\s+off|disable|no|without)\s+strict(?:\s+mode)?\b|\bstrict(?:\s+mode)?\s+off\b|\blenient\s+mode\b|\bnon-?strict(?:\s+mode)?\b|\bnot\s+strict\b"
        ),
        False,
        lambda m: {"strict": False},
    ),
    (
        _compile(r"\b(?:turn\s+on|enable|use)\s+strict(?:\s+mode)?\b|\bstrict(?:\s+mode)?\s+on\b|\bstrict\s+mode\b"),
        False,
        lambda m: {"strict": True},
    ),
    # counts
    (
        _compile(
            rf"\b{_LEAD}(?P<n>{NUM})\s+(?:more\s+)?(?:variations?|variants?|images?|candidates?|pictures?|takes?)(?:\s+(?:per|for\s+each|each)\s+scene)?\b"
        ),
        False,
        lambda m: {"num_variations": _number_of(m)},
    ),
    (
        _compile(rf"\b(?:variations?|variants?){_SET}(?P<n>{NUM})\b"),
        True,
        lambda m: {"num_variations": _number_of(m)},
    ),
    (
        _compile(
            rf"\b{_LEAD}(?P<n>{NUM})\s+(?:enhancement\s+|critique\s+|refinement\s+|prompt\s+)?(?:iterations?|rounds?|passes|loops?|cycles?)\b"
        ),
        False,
        lambda m: {"max_enhancement_iterations": _number_of(m)},
    ),
    (
        _compile(rf"\b(?:max(?:imum)?\s+)?(?:enhancement\s+)?(?:iterations?|rounds?){_SET}(?P<n>{NUM})\b"),
        True,
        lambda m: {"max_enhancement_iterations": _number_of(m)},
    ),
    (
        _compile(r"\b(?:no\s+retries|don'?t\s+retry|never\s+retry|without\s+retries)\b"),
        False,
        lambda m: {"max_retries": 0},
    ),
    (
        _compile(rf"\b{_LEAD}(?P<n>{NUM})\s+(?:retries|retry|re-tries)\b"),
        False,
        lambda m: {"max_retries": _number_of(m)},
    ),
    (
        _compile(rf"\b(?:max(?:imum)?\s+)?retries{_SET}(?P<n>{NUM})\b"),
        True,
        lambda m: {"max_retries": _number_of(m)},
    ),
    (
        _compile(rf"\b{_LEAD}(?P<n>{NUM})\s+attempts?(?:\s+per\s+scene)?\b"),
        False,
        lambda m: {"max_retries": _number_of(m) - 1},
    ),
    # thresholds
    (
        _compile(
            r"\b(?:disable|turn\s+off|no|skip|without)\s+(?:the\s+)?consistency(?:\s+(?:check|threshold|validation))?\b"
        ),
        False,
        lambda m: {"consistency_threshold": 0},
    ),
    (
        _compile(rf"\b(?:min(?:imum)?\s+)?consistency(?:\s+threshold)?{_SET}(?P<n>{NUM})\b"),
        False,
        lambda m: {"consistency_threshold": _number_of(m)},
    ),
    (
        _compile(rf"\b(?:min(?:imum)?\s+)?quality(?:\s+threshold)?{_SET}(?P<n>{NUM})\b"),
        False,
        lambda m: {"quality_threshold": _number_of(m)},
    ),
    (
        _compile(rf"\b(?:approval(?:\s+threshold)?|approve\s+at){_SET}(?P<n>{NUM})\b"),
        False,
        lambda m: {"approval_threshold": _number_of(m)},
    ),
    # seed
    (
        _compile(r"\b(?:a\s+)?(?:random|new|any|no(?:\s+fixed)?)\s+seed\b"),
        False,
        lambda m: {"random_seed": True},
    ),
    (
        _compile(r"\b(?:with\s+|use\s+)?seed\s*(?:to|=|:|of|#|number)?\s*(?P<n>\d+)\b"),
        False,
        lambda m: {"seed": int(m.group("n"))},
    ),
    # frame
    (_compile(rf"\b{_LEAD}{_KNOWN_RATIO}\b{_RATIO_SUFFIX}\b"), False, _ratio),
    (
        _compile(rf"\b{_LEAD}(?P<a>\d{{1,2}})\s*[:x×]\s*(?P<b>\d{{1,2}}){_RATIO_SUFFIX}\b"),
        True,
        _ratio,
    ),
    (
        _compile(
            rf"\b(?:in|as)\s+(?:a\s+)?(?P<w>{_ASPECT_ALT})(?:\s+(?:format|mode|orientation|frames?|aspect(?:\s+ratio)?))?\b"
        ),
        False,
        _aspect_word,
    ),
    (
        _compile(rf"\b(?P<w>{_ASPECT_ALT})(?:\s+(?:format|mode|orientation|frames?|aspect(?:\s+ratio)?))?\b"),
        True,
        _aspect_word,
    ),
    (
        _compile(rf"\b{_LEAD}(?P<n>\d{{2,4}})\s*(?:px|pixels?)(?:\s+(?:resolution|wide|long\s+edge))?\b"),
        False,
        lambda m: {"resolution": int(m.group("n"))},
    ),
    (
        _compile(rf"\bresolution{_SET}(?P<n>\d{{2,4}})\b"),
        False,
        lambda m: {"resolution": int(m.group("n"))},
    ),
]

_SHOW_SETTINGS = _compile(r"\b(?:settings|config(?:uration)?|parameters)\b")


def _settings(text: str, *, loose: bool) -> tuple[dict[str, Any], str]:
    """The settings a message asks for, and the message with those words blanked out."""
    changes: dict[str, Any] = {}
    working = text
    for pattern, loose_only, handler in _SETTINGS:
        if loose_only and not loose:
            continue
        for match in pattern.finditer(working):
            if "\0" in match.group(0):
                continue
            for name, value in handler(match).items():
                changes.setdefault(name, value)
            working = working[: match.start()] + "\0" * (match.end() - match.start()) + working[match.end() :]
    _check_counts(changes)
    return changes, working.replace("\0", " ")


# Storyboards --------------------------------------------------------------------------------
_DURATION = _compile(
    rf"\b(?:(?:of|for|about|around|roughly|lasting)\s+)?(?P<n>{NUM})\s*(?:-\s*)?(?P<u>seconds?|secs?|minutes?|mins?)\b(?:\s+long)?"
    rf"|\b(?:(?:of|for|about|around|roughly|lasting)\s+)?(?P<d>\d+(?:\.\d+)?)(?P<v>s|m)\b(?:\s+long)?"
)
_SCENE_COUNT = _compile(rf"\b(?:(?:with|in|of)\s+)?(?P<n>{NUM})\s*(?:-\s*)?scenes?\b")
_BOARD = _compile(
    r"\b(?:story[\s-]?boards?|boards?|videos?|ads?|adverts?|advertisements?|commercials?|spots?|promos?|clips?|films?|sequences?)\b"
)
_START_VERB = _compile(
    r"\b(?:make|create|generate|start|build|produce|draft|do|design|plan|begin|give\s+me|want|like|need|let'?s|lets|new|another)\b"
)
_CONNECTOR = _compile(
    r"^(?:[\s:,;.\-–—]|about|of|for|on|showing|that\s+shows|which\s+shows|featuring|depicting|around|called|titled|"
    r"with\s+the\s+concept|concept|that|where)+\s*"
)
_LEADING = _compile(
    r"^(?:[\s,:;.\-–—]|please|can\s+you|could\s+you|would\s+you|will\s+you|let'?s|lets|i\s+want(?:\s+to)?|i'?d\s+like(?:\s+to)?|"
    r"i\s+would\s+like(?:\s+to)?|i\s+need|make|create|generate|start|build|produce|draft|do|design|plan|begin|give\s+me|me|us|"
    r"a|an|the|new|another|one\s+more|quick|short)+\b\s*"
)
_TRAILING = _compile(
    r"(?:[\s,:;.!?\-–—]|\b(?:with|and|in|at|please|for|of|on|to|the|a|an|then|also|that\s+is|which\s+is|long))+$"
)


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    previous = None
    while previous != text:
        previous = text
        text = _TRAILING.sub("", text).strip()
        text = re.sub(r"^[\s,:;.\-–—]+", "", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)


def _duration(match: re.Match[str]) -> float:
    if match.group("n") is not None:
        value = float(parse_number(match.group("n")) or 0)
        unit = match.group("u").lower()
    else:
        value, unit = float(match.group("d")), match.group("v").lower()
    return value * 60 if unit.startswith("m") else value


def _start(text: str) -> ParsedMessage:
    changes, working = _settings(text, loose=False)
    args: dict[str, Any] = {}
    if duration := _DURATION.search(working):
        args["target_duration_s"] = _duration(duration)
        working = working[: duration.start()] + " " + working[duration.end() :]
    if count := _SCENE_COUNT.search(working):
        value = parse_number(count.group("n"))
        if value is not None:
            args["num_scenes"] = value
        working = working[: count.start()] + " " + working[count.end() :]
    board = _BOARD.search(working)
    if board is not None:
        after = _CONNECTOR.sub("", working[board.end() :])
        description = _tidy(after) or _tidy(_LEADING.sub("", working[: board.start()]))
    else:
        description = _tidy(_LEADING.sub("", working))
    if not description:
        return ParsedMessage(
            kind="clarify",
            question=(
                'What should the storyboard be about? For example: "make a 15 second storyboard about artisan coffee".'
            ),
        )
    calls = [ToolRequest(name="change_settings", args=changes)] if changes else []
    calls.append(ToolRequest(name="start_storyboard", args={"description": description, **args}))
    return ParsedMessage(kind="tools", calls=calls)


def _is_start(text: str) -> bool:
    board = _BOARD.search(text)
    if board is None:
        return False
    return bool(_START_VERB.search(text)) or board.start() == 0


# Refining -----------------------------------------------------------------------------------
_REFINE_VERB = _compile(
    r"\b(?:make|refine|change|redo|re-do|regenerate|re-generate|rerun|re-run|rework|tweak|adjust|update|edit|fix|"
    r"improve|alter|modify|rewrite|give|set|turn|add|remove|put|try|should|needs?|could|want)\b"
)
_INSTRUCTION_LEAD = _compile(
    r"^(?:[\s:,;\-–—]|so\s+(?:that\s+)?(?:it\s+)?(?:is|looks|feels|'s)?|to\s+be|to\s+look|to\s+feel|to|look|feel|"
    r"should\s+be|should|needs\s+to\s+be|needs\s+to|must\s+be|is|be|please)+\b\s*"
)
_BEFORE_LEAD = _compile(
    r"^(?:[\s,:;\-–—]|please|can\s+you|could\s+you|would\s+you|make|refine|change|redo|re-do|regenerate|rerun|rework|tweak|"
    r"adjust|update|edit|fix|improve|alter|modify|rewrite|it|the|a)+\b\s*"
)
_BEFORE_TRAIL = _compile(r"(?:\s|\b(?:in|for|of|on|to|the|at))+$")


def _refine(text: str, scene: re.Match[str]) -> ParsedMessage:
    number = _ref_value(scene)
    changes, working = _settings(text, loose=False)
    scene_again = _SCENE_REF.search(working)
    start, end = (scene_again.start(), scene_again.end()) if scene_again else (scene.start(), scene.end())
    instruction = _tidy(_INSTRUCTION_LEAD.sub("", working[end:]))
    if not instruction:
        before = _BEFORE_LEAD.sub("", working[:start])
        instruction = _tidy(_BEFORE_TRAIL.sub("", before))
    calls = [ToolRequest(name="change_settings", args=changes)] if changes else []
    calls.append(
        ToolRequest(
            name="refine_scene",
            args={"scene": number if number is not None else 0, "instruction": instruction},
        )
    )
    return ParsedMessage(kind="tools", calls=calls)


# Explaining, status, help -------------------------------------------------------------------
_EXPLAIN = _compile(r"\b(?:why|explain|how\s+come|what\s+made|reason)\b")
_WIN = _compile(
    r"\b(?:win|wins|won|winner|winning|chosen|choose|chose|picked|pick|selected|select|best|lose|loses|lost|losing|beat|ranked)\b"
)
_STATUS = _compile(
    r"\bhow(?:'s|\s+is|\s+are)?\s+(?:it|things|we|my\s+storyboard|the\s+storyboard|everything)\s+(?:going|doing|coming\s+along)\b"
    r"|\bstatus\b|\bprogress\b|\bis\s+it\s+(?:done|ready|finished|complete)\b|\bare\s+we\s+(?:done|there)\b|\bhow\s+far\b"
    r"|\bhow\s+long\b|\beta\b|\bwhat'?s\s+happening\b|\bwhere\s+are\s+we\b|\bany\s+news\b|\b(?:done|finished|ready)\s+yet\b"
    r"|^update\W*$"
)
_HELP = _compile(
    r"^\W*(?:help|hi|hello|hey|commands|menu)\b|\bwhat\s+(?:can|do)\s+you\s+do\b|\bhow\s+does\s+this\s+work\b"
    r"|\bhow\s+do\s+i\s+use\b|\bhelp\s+me\b|^\W*\?+\W*$"
)


def _explain(text: str) -> ParsedMessage:
    args: dict[str, Any] = {}
    if (scene := _SCENE_REF.search(text)) and (value := _ref_value(scene)) is not None:
        args["scene"] = value
    if (image := _IMAGE_REF.search(text)) and (value := _ref_value(image)) is not None:
        args["image"] = value
    return ParsedMessage(kind="tools", calls=[ToolRequest(name="explain_winner", args=args)])


def parse_message(message: str) -> ParsedMessage:
    """The tool calls (or clarifying question, or help) that answer ``message``."""
    text = " ".join(message.replace("\u2019", "'").split())
    if not text:
        return ParsedMessage(kind="unknown")
    try:
        return _parse(text)
    except _Unclear as exc:
        return ParsedMessage(kind="clarify", question=str(exc))


def _parse(text: str) -> ParsedMessage:
    # 1. Explain a winner
    if _EXPLAIN.search(text) and (
        _WIN.search(text)
        or _IMAGE_REF.search(text)
        or (re.search(r"\bexplain\b", text, re.IGNORECASE) and _SCENE_REF.search(text))
    ):
        return _explain(text)
    # 2. Refine a scene
    scene = _SCENE_REF.search(text)
    if scene is not None and (_REFINE_VERB.search(text) or text[scene.end() :].lstrip().startswith(":")):
        return _refine(text, scene)
    # 3. Start a storyboard
    if _is_start(text):
        return _start(text)
    # 4. Settings (and a status question beside them)
    changes, _ = _settings(text, loose=True)
    calls: list[ToolRequest] = []
    if changes or _SHOW_SETTINGS.search(text):
        calls.append(ToolRequest(name="change_settings", args=changes))
    # 5. Status
    if _STATUS.search(text):
        calls.append(ToolRequest(name="report_status"))
    if calls:
        return ParsedMessage(kind="tools", calls=calls)
    # 6. Help, else unknown
    return ParsedMessage(kind="help" if _HELP.search(text) else "unknown")
