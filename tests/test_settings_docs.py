"""README's settings table lists exactly the options of the settings tree, so the docs cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from imageforge.api.core.config import environment_names

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting_once() -> None:
    documented = re.findall(r"^\| `(IMAGEFORGE_[A-Z0-9_]+)` \|", README.read_text(), flags=re.MULTILINE)
    expected = sorted(env for env, _, _ in environment_names())
    assert sorted(documented) == expected, (
        "README's settings table is out of date; print a new one with "
        '`python -c "from imageforge.api.core.config import settings_markdown as m; print(m())"`'
    )


def test_every_setting_says_what_it_does() -> None:
    assert [env for env, _, description in environment_names() if not description] == []
