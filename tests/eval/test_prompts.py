"""Prompt sets: the built-in PartiPrompts sample and the user's own files."""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest

from imageforge.api.services.evaluation.prompts import PromptSetError, builtin_prompts, load_prompts


def test_builtin_set_spans_the_categories_and_is_attributed():
    prompts = builtin_prompts()
    assert len(prompts) == 50
    assert len({p.id for p in prompts}) == 50
    categories = Counter(p.category for p in prompts)
    assert len(categories) == 12 and min(categories.values()) >= 4, categories
    package = resources.files("imageforge.api.services.evaluation")
    attribution = package.joinpath("data/ATTRIBUTION.md").read_text("utf-8")
    assert "PartiPrompts" in attribution and "Apache License" in attribution


def test_text_jsonl_and_csv_files(tmp_path):
    text = tmp_path / "prompts.txt"
    text.write_text("a red cube\n\n  a lighthouse at dusk  \n", encoding="utf-8")
    assert [(p.id, p.prompt, p.category) for p in load_prompts(text)] == [
        ("p001", "a red cube", "uncategorised"),
        ("p002", "a lighthouse at dusk", "uncategorised"),
    ]
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text('{"prompt": "a fox", "category": "Animals"}\n{"prompt": "a boat", "id": "boat"}\n')
    assert [(p.id, p.category) for p in load_prompts(jsonl)] == [("p001", "Animals"), ("boat", "uncategorised")]
    csv_file = tmp_path / "prompts.csv"
    csv_file.write_text('Prompt,Category\n"a cat, sleeping",Animals\na tree,\n', encoding="utf-8")
    assert [(p.prompt, p.category) for p in load_prompts(csv_file)] == [
        ("a cat, sleeping", "Animals"),
        ("a tree", "uncategorised"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", "\n\n", "holds no prompts"),
        ("bad.jsonl", '{"prompt": "ok"}\n{not json\n', "line 2: not JSON"),
        ("noprompt.jsonl", '{"text": "a fox"}\n', "line 1: needs a non-empty `prompt`"),
        ("list.jsonl", '["a fox"]\n', "expected an object"),
        ("twice.jsonl", '{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', "appears twice"),
        ("header.csv", "text,category\na fox,Animals\n", "needs a `prompt` column"),
        ("prompts.yaml", "- a fox\n", "unknown prompt file type"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PromptSetError, match=message):
        load_prompts(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(PromptSetError, match="no such file"):
        load_prompts(tmp_path / "absent.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x80")
    with pytest.raises(PromptSetError, match="UTF-8"):
        load_prompts(binary)
