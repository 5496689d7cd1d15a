"""Subject faithfulness benchmark (issue 12, part 2), run by hand: `python benchmarks/bench_subject.py`.

Plans every concept of ``subject_concepts.jsonl`` with the offline planner, runs each scene
through the enhancement loop (heuristic cinematographer and prompt engineer, the default
approval threshold and iteration cap) and counts the scenes whose final prompt still names
the concept's subject.

"Names the subject", precisely: every key term the set lists for the concept (its head
noun or nouns, in the concept's own language and words, annotated by hand so the measure
does not depend on the planner's own reading) occurs in the prompt as a whole word or
phrase, ignoring case, where a term also matches its plural (+s, +es) and possessive ('s)
forms. Terms in a script written without spaces (Japanese, Chinese) match as substrings.
Text in double quotes is left out: a tagline is lettering in the frame, not what it shows.
The planned prompt is checked the same way, so a miss can be told apart: lost by the
planner or lost by the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factories import make_context

from imageforge.agents.planner import plan
from imageforge.graph.enhancement import enhancement_graph
from imageforge.graph.state import EnhanceInput

CONCEPTS = Path(__file__).with_name("subject_concepts.jsonl")
_NO_SPACES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def names_term(text: str, term: str) -> bool:
    """Whether ``text`` contains ``term`` as a whole word or phrase (or its plural/possessive)."""
    if _NO_SPACES.search(term):
        return term in text
    pattern = rf"(?<!\w){re.escape(term.lower())}(?:s|es|'s|’s)?(?!\w)"
    return re.search(pattern, text.lower()) is not None


def names_subject(text: str, terms: list[str]) -> bool:
    described = re.sub(r'"[^"]*"|“[^”]*”', " ", text)
    return all(names_term(described, term) for term in terms)


async def measure(concepts: list[dict]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        context = make_context(Path(folder))
        for item in concepts:
            storyboard, _ = await plan(item["concept"], llm=None)
            for scene in storyboard.scenes:
                output = await enhancement_graph.ainvoke(
                    EnhanceInput(generation_id="bench", scene=scene, markers=storyboard.markers), context=context
                )
                result = output["enhancements"][scene.scene_number]
                rows.append(
                    {
                        "concept": item["concept"],
                        "kind": item["kind"],
                        "scene": scene.scene_number,
                        "planned": names_subject(scene.prompt, item["subject"]),
                        "final": names_subject(result.final.prompt, item["subject"]),
                        "final_prompt": result.final.prompt,
                        "overall": result.best.critique.overall,
                    }
                )
    return rows


def report(rows: list[dict], *, show_misses: bool) -> str:
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    lines = [
        "| kind | concepts | scenes | planned prompt names subject | final prompt names subject |",
        "|---|---|---|---|---|",
    ]

    def line(name: str, group: list[dict]) -> str:
        concepts = len({r["concept"] for r in group})
        planned = sum(r["planned"] for r in group)
        final = sum(r["final"] for r in group)
        n = len(group)
        return f"| {name} | {concepts} | {n} | {planned}/{n} ({planned / n:.0%}) | {final}/{n} ({final / n:.0%}) |"

    lines += [line(kind, group) for kind, group in by_kind.items()]
    lines.append(line("**all**", rows))
    mean = sum(r["overall"] for r in rows) / len(rows)
    lines.append(f"\nMean overall score of the kept versions: {mean:.1f}")
    if show_misses:
        misses = [r for r in rows if not r["final"]]
        lines.append(f"\nScenes whose final prompt lost the subject: {len(misses)}")
        lines += [f"- {r['concept']!r} scene {r['scene']}: {r['final_prompt'][:160]}" for r in misses]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=Path, default=CONCEPTS, help="JSONL: concept, kind, subject terms")
    parser.add_argument("--misses", action="store_true", help="list the scenes that lost the subject")
    args = parser.parse_args()
    concepts = [json.loads(line) for line in args.concepts.read_text(encoding="utf-8").splitlines() if line.strip()]
    print(report(asyncio.run(measure(concepts)), show_misses=args.misses))


if __name__ == "__main__":
    main()
