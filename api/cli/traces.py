"""`imageforge traces`: keep the trace folder (and uploaded references) from growing forever.

`prune` deletes traces older than an age (failed and cancelled runs kept unless told
otherwise, running ones never) and uploaded references nobody uses any more; `--dry-run`
shows the same report without deleting. The service runs the same functions on a schedule
(IMAGEFORGE_TRACE_RETENTION__*); this command is for a CLI-only setup or a one-off clean-up.
Mounted in ``api/cli/__init__.py`` with ``app.add_typer(traces_app, name="traces")``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imageforge.api.cli.models import format_bytes
from imageforge.traces.retention import PruneReport, prune, prune_uploads

__all__ = ["parse_age", "traces_app"]

traces_app = typer.Typer(help="Inspect and prune stored traces.", no_args_is_help=True, pretty_exceptions_enable=False)

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """'30m', '12h', '7d', '2w' (a bare number is days) -> a timedelta; ValueError names the option."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw]?)\s*", text.lower())
    if match is None:
        raise ValueError(f"--older-than must be a number with m, h, d or w (e.g. 7d), got {text!r}")
    value, unit = float(match.group(1)), match.group(2) or "d"
    return timedelta(**{_UNITS[unit]: value})


def _live_generations() -> set[str]:
    """Queued and running generations of the service on this machine, when its database exists."""
    from imageforge.api.core.config import Settings
    from imageforge.api.core.db import create_db_engine
    from imageforge.api.services.retention import live_generation_ids

    settings = Settings()
    database = settings.effective_database_url
    if database.startswith("sqlite:///") and not Path(database.removeprefix("sqlite:///")).exists():
        return set()
    engine = create_db_engine(settings)
    try:
        return live_generation_ids(engine)
    finally:
        engine.dispose()


@traces_app.command("prune")
def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delete what is older than this: 30m, 12h, 7d, 2w.")
    ] = "7d",
    keep_failed: Annotated[
        bool, typer.Option("--keep-failed/--delete-failed", help="Keep the traces of failed and cancelled runs.")
    ] = True,
    uploads: Annotated[
        bool, typer.Option("--uploads/--no-uploads", help="Also delete old uploaded references nobody uses.")
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")] = False,
    root: Annotated[Path | None, typer.Option("--root", help="Trace folder (default: IMAGEFORGE_TRACE_ROOT).")] = None,
    upload_dir: Annotated[
        Path | None, typer.Option("--upload-dir", help="Uploads folder (default: IMAGEFORGE_DATA_DIR/uploads).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Delete old traces and unused uploads (running generations are never touched)."""
    from pydantic import ValidationError

    from imageforge.api.core.config import Settings

    console = Console()
    try:
        age = parse_age(older_than)
        settings = Settings()
    except (ValueError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    root = root if root is not None else settings.trace_root
    upload_dir = upload_dir if upload_dir is not None else settings.upload_dir
    live = _live_generations()
    report = prune(root, older_than=age, keep_failed=keep_failed, dry_run=dry_run, protect=live)
    if uploads:
        report = report.merge(prune_uploads(upload_dir, older_than=age, in_use=live, dry_run=dry_run))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _render(console, report)
    if report.failed:
        raise typer.Exit(1)


def _render(console: Console, report: PruneReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    table = Table(title=f"{verb}: {report.deleted_count}, kept: {report.kept_count}")
    for column in ("", "kind", "name", "status", "age", "size", "reason"):
        table.add_column(column)
    rows = [(verb, e) for e in report.deleted] + [("failed", e) for e in report.failed]
    for action, entry in rows:
        age = f"{entry.age.total_seconds() / 86400:.1f} d"
        status = entry.status or "-"
        table.add_row(action, entry.kind, entry.name, status, age, format_bytes(entry.size_bytes), entry.reason)
    console.print(table)
    console.print(f"{format_bytes(report.bytes_freed)} {'would be freed' if report.dry_run else 'freed'}.")
