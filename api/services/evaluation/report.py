"""report.md for the terminal and a self-contained report.html: the summary's figures in
tables, two plots (means with intervals per arm; per-category differences against raw) and
every prompt's four images side by side with their scores.

The HTML carries everything inside it (images and plots as data URIs, no scripts, no
network), so it can be mailed or archived as one file. Plots use matplotlib's Agg backend.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image

from imageforge.api.services.evaluation.store import ARMS, EvalConfig, EvalRecord, latest
from imageforge.api.services.evaluation.summary import BASELINE

__all__ = ["render_html", "render_markdown", "write_reports"]

#: Long edge of the images shown in report.html, as JPEG, so 50 prompts x 4 arms stay a few MB.
THUMBNAIL_PX = 320


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return f"{value:+.1f}"


def _interval(cell: dict[str, Any], signed: bool = False) -> str:
    show = _signed if signed else _fmt
    return f"{show(cell['mean'])} [{show(cell['low'])}, {show(cell['high'])}]"


def _win(cell: dict[str, Any]) -> str:
    return f"{cell['rate'] * 100:.0f}% ({cell['wins']}/{cell['ties']}/{cell['losses']})"


def render_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# imageforge eval {summary['eval_id']}", ""]
    lines.append(
        f"{summary['prompts']} prompts ({summary['prompt_source']}), four arms, N = {summary['variations']} "
        f"variations for the best-of-N arms; {summary['finished']} of {summary['expected']} prompt-arms finished."
    )
    backends = summary["backends"]
    if backends:
        lines.append(
            "Generator: {generator} {generator_model}; agents: {llm}; selection scorers: {selection}.".format(
                generator=backends.get("generator", "?"),
                generator_model=backends.get("generator_model", ""),
                llm=backends.get("llm", "?"),
                selection=", ".join(summary["selection"]),
            )
        )
    lines.append("")
    for caveat in summary["caveats"]:
        lines += [f"> **Note.** {caveat}", ""]
    lines.append("Arms: " + "; ".join(f"**{arm}**: {text}" for arm, text in summary["arms"].items()) + ".")
    lines.append("")
    boot = summary["bootstrap"]
    lines.append(
        f"Means with {boot['confidence'] * 100:.0f}% {boot['method']} bootstrap intervals "
        f"({boot['resamples']} resamples, seed {boot['seed']}); differences are paired per prompt against "
        f"**{summary['baseline']}**; win rate = share of prompts where the arm beat raw (ties count half), "
        "with wins/ties/losses."
    )
    for judge in summary["judges"]:
        name = judge["name"]
        figures = summary["results"][name]
        flags = [flag for flag, on in (("stand-in", judge["stand_in"]), ("also selected", judge["selected"])) if on]
        lines += ["", f"## Judge: {name}" + (f" ({', '.join(flags)})" if flags else ""), ""]
        if not figures["n"]:
            lines.append("No prompt finished every arm; no figures.")
            continue
        lines.append(f"Over {figures['n']} prompts with every arm judged.")
        lines += ["", "| Arm | Mean [95% CI] | Δ vs raw [95% CI] | Win rate vs raw (W/T/L) |", "|---|---|---|---|"]
        for arm in ARMS:
            versus = figures["vs_raw"].get(arm)
            lines.append(
                f"| {arm} | {_interval(figures['arms'][arm])} | "
                f"{_interval(versus['difference'], signed=True) if versus else '–'} | "
                f"{_win(versus['win_rate']) if versus else '–'} |"
            )
        if len(figures["categories"]) > 1:
            others = [arm for arm in ARMS if arm != BASELINE]
            lines += ["", "| Category | n | raw mean | " + " | ".join(f"Δ {arm}" for arm in others) + " |"]
            lines.append("|---|---|---|" + "---|" * len(others))
            for category, cell in figures["categories"].items():
                deltas = " | ".join(_interval(cell["vs_raw"][arm], signed=True) for arm in others)
                lines.append(f"| {category} | {cell['n']} | {_fmt(cell['means'][BASELINE])} | {deltas} |")
    lines += ["", "## Cost", "", "| Arm | Wall time (s) | Images generated | LLM requests | LLM tokens | Failed |"]
    lines.append("|---|---|---|---|---|---|")
    for arm in ARMS:
        cell = summary["cost"][arm]
        lines.append(
            f"| {arm} | {cell['wall_s']:.1f} | {cell['images']} | {cell['llm_requests']} | {cell['llm_tokens']} | "
            f"{cell['failed']} |"
        )
    lines.append("")
    lines.append(
        "The enhanced arm reuses the full arm's enhancement: its LLM requests and critique-loop time are the same "
        "calls, spent once. Tokens are counted where the backend reports them."
    )
    if summary["failures"]:
        lines += ["", "## Failures", ""]
        lines += [f"- {f['prompt_id']} / {f['arm']}: {f['error']}" for f in summary["failures"]]
    return "\n".join(lines) + "\n"


def _png_data_uri(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(summary: dict[str, Any]) -> list[dict[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    plots: list[dict[str, str]] = []
    judged = [j["name"] for j in summary["judges"] if summary["results"][j["name"]]["n"]]
    if not judged:
        return plots
    figure = Figure(figsize=(4.2 * len(judged), 3.6), layout="constrained")
    for position, name in enumerate(judged, start=1):
        axes = figure.add_subplot(1, len(judged), position)
        cells = [summary["results"][name]["arms"][arm] for arm in ARMS]
        means = [c["mean"] for c in cells]
        errors = [[c["mean"] - c["low"] for c in cells], [c["high"] - c["mean"] for c in cells]]
        axes.errorbar(range(len(ARMS)), means, yerr=errors, fmt="o", capsize=5, color="#2b6cb0")
        axes.set_xticks(range(len(ARMS)), ARMS, rotation=20)
        axes.set_title(name)
        axes.set_ylabel("score (0-100)")
        axes.grid(axis="y", alpha=0.3)
    figure.suptitle("Mean score per arm with 95% bootstrap interval")
    plots.append({"title": "Means per arm", "uri": _png_data_uri(figure)})

    others = [arm for arm in ARMS if arm != BASELINE]
    colours = {"raw-best-of-n": "#dd6b20", "enhanced": "#38a169", "full": "#805ad5"}
    for name in judged:
        categories = summary["results"][name]["categories"]
        if len(categories) < 2:
            continue
        labels = list(categories)
        figure = Figure(figsize=(7.5, 0.55 * len(labels) * len(others) / 2 + 1.6), layout="constrained")
        axes = figure.add_subplot(1, 1, 1)
        height = 0.8 / len(others)
        for k, arm in enumerate(others):
            cells = [categories[c]["vs_raw"][arm] for c in labels]
            ys = [i + (k - (len(others) - 1) / 2) * height for i in range(len(labels))]
            xerr = [[c["mean"] - c["low"] for c in cells], [c["high"] - c["mean"] for c in cells]]
            axes.barh(ys, [c["mean"] for c in cells], height=height, xerr=xerr, label=arm, color=colours[arm])
        axes.axvline(0, color="black", linewidth=0.8)
        axes.set_yticks(range(len(labels)), [f"{c} (n={categories[c]['n']})" for c in labels])
        axes.invert_yaxis()
        axes.set_xlabel(f"{name}: difference vs raw (points)")
        axes.legend(loc="best", fontsize="small")
        axes.grid(axis="x", alpha=0.3)
        figure.suptitle(f"Per-category difference against raw ({name})")
        plots.append({"title": f"Per-category differences ({name})", "uri": _png_data_uri(figure)})
    return plots


def _thumbnail(path: Path) -> str | None:
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rows(config: EvalConfig, records: list[EvalRecord], eval_dir: Path) -> list[dict[str, Any]]:
    by_key = latest(records)
    rows = []
    for item in config.prompts:
        cells = []
        for arm in ARMS:
            record = by_key.get((item.id, arm))
            cells.append(
                {
                    "arm": arm,
                    "record": record,
                    "image": _thumbnail(eval_dir / record.image) if record and record.image else None,
                }
            )
        if any(cell["record"] is not None for cell in cells):
            rows.append({"prompt": item, "cells": cells})
    return rows


def render_html(summary: dict[str, Any], config: EvalConfig, records: list[EvalRecord], eval_dir: Path) -> str:
    environment = Environment(
        loader=PackageLoader("imageforge.api.services.evaluation", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    environment.filters["interval"] = _interval
    environment.filters["win"] = _win
    environment.filters["fmt"] = _fmt
    template = environment.get_template("report.html")
    return template.render(
        summary=summary,
        arms=ARMS,
        baseline=BASELINE,
        plots=_plots(summary),
        rows=_rows(config, records, eval_dir),
    )


def write_reports(summary: dict[str, Any], config: EvalConfig, records: list[EvalRecord], eval_dir: Path) -> None:
    """summary.json, report.md and report.html, each written then renamed into place."""
    import json

    outputs = {
        "summary.json": json.dumps(summary, indent=2, ensure_ascii=False),
        "report.md": render_markdown(summary),
        "report.html": render_html(summary, config, records, eval_dir),
    }
    for name, text in outputs.items():
        temporary = eval_dir / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(eval_dir / name)
