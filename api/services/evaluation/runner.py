"""Running an evaluation: every prompt through every arm not yet in results.jsonl, then the
reports. The CLI builds the backends and the judges and passes them in; tests pass tiny ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imageforge.api.services.evaluation.arms import RUN_ORDER, prompt_seed, run_arm
from imageforge.api.services.evaluation.report import write_reports
from imageforge.api.services.evaluation.store import Arm, EvalConfig, EvalRecord, ResultsLog, latest
from imageforge.api.services.evaluation.summary import summarize
from imageforge.graph.context import Context
from imageforge.graph.services import Services
from imageforge.scoring.base import Scorer

__all__ = ["pending", "run_evaluation"]

ProgressHandler = Callable[[EvalRecord | None, str], None]
"""Called when an arm starts (record None, label) and when it ends (its record, label)."""


def pending(config: EvalConfig, records: list[EvalRecord]) -> list[tuple[int, Arm]]:
    """(prompt index, arm) still to run: no line yet, or a failed one to retry."""
    done = {key for key, record in latest(records).items() if record.status == "ok"}
    return [
        (index, arm) for index, item in enumerate(config.prompts) for arm in RUN_ORDER if (item.id, arm) not in done
    ]


async def run_evaluation(
    config: EvalConfig,
    eval_dir: Path,
    *,
    services: Services,
    judges: dict[str, Scorer],
    on_progress: ProgressHandler | None = None,
) -> dict:
    """Run what is pending, append each arm's record as it finishes, write the reports; returns the summary."""
    log = ResultsLog(eval_dir)
    records = log.read()
    context = Context(
        settings=config.settings,
        backends=config.backends,
        trace_root=str(eval_dir / "traces"),
        services=services,
    )
    for index, arm in pending(config, records):
        item = config.prompts[index]
        label = f"{item.id} {arm}"
        if on_progress is not None:
            on_progress(None, label)
        full = latest(records).get((item.id, "full"))
        record = await run_arm(
            item,
            arm,
            base_seed=prompt_seed(config.seed, index),
            context=context,
            judges=judges,
            eval_dir=eval_dir,
            enhancement=None if full is None or full.status != "ok" else full.enhancement,
        )
        log.append(record)
        records.append(record)
        if on_progress is not None:
            on_progress(record, label)
    summary = summarize(config, records)
    write_reports(summary, config, records, eval_dir)
    return summary
