"""`imageforge models`: what model weights are on disk, and downloading them on request.

`list` reads only the local disk. `pull NAME` lists what it would fetch and its size from the
hub first, asks before downloading (unless --yes), then shows byte progress, and records the
commit it fetched of each repository, which the loaders then read (`--revision` fetches and
pins another branch, tag or commit). An unknown name or revision or an unreachable hub is one
error line and exit code 2; declining the download is exit 1.
Mounted in ``api/cli/__init__.py`` with ``app.add_typer(models_app, name="models")``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imageforge.tools import model_store

__all__ = ["format_bytes", "models_app"]

models_app = typer.Typer(
    help="List and download the model weights the real generator and scorers use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def format_bytes(size: int) -> str:
    """1536 -> '1.5 KB' (decimal units, as the Hugging Face Hub shows sizes)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@models_app.command("list")
def list_command() -> None:
    """Show each model set: whether it is on disk, its size there, and which role uses it."""
    console = Console()
    table = Table(title="Model sets", caption=_caption())
    table.add_column("name", style="bold")
    table.add_column("present")
    table.add_column("size", justify="right")
    table.add_column("used by")
    table.add_column("repositories", overflow="fold")
    for status in model_store.list_models():
        table.add_row(
            status.name,
            "[green]yes[/]" if status.present else "[dim]no[/]",
            format_bytes(status.size_bytes) if status.size_bytes else "-",
            ", ".join(status.used_by),
            ", ".join(status.repo_ids),
        )
    console.print(table)


def _caption() -> str:
    groups = "; ".join(f"{name} = {', '.join(members)}" for name, members in model_store.GROUPS.items())
    return f"Groups: {groups}. Cache: {model_store.hub_cache_dir()}"


@models_app.command("pull")
def pull_command(
    name: Annotated[str, typer.Argument(help="A model set or group from `imageforge models list`.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Download without asking.")] = False,
    revision: Annotated[
        list[str] | None,
        typer.Option(
            "--revision",
            help="Branch, tag or commit to fetch and pin instead of main; REPO_ID=REV for a set of several "
            "repositories (repeat the option).",
        ),
    ] = None,
) -> None:
    """Download a model set into the Hugging Face cache, showing its size first; pin what was fetched."""
    console = Console()
    try:
        revisions = _revisions(name, revision or [])
    except KeyError as exc:
        raise _fail(f"--revision: {exc.args[0]}") from exc
    except ValueError as exc:
        raise _fail(f"unknown model set: {exc}") from exc
    try:
        with console.status(f"Listing the files of {name} on the Hugging Face Hub..."):
            plan = model_store.plan_pull(name, revisions=revisions) if revisions else model_store.plan_pull(name)
    except ValueError as exc:
        raise _fail(f"unknown model set: {exc}") from exc
    except model_store.HubError as exc:
        raise _fail(str(exc)) from exc

    for repo in plan.repos:
        at = "" if repo.revision == "main" else f" at {repo.revision}"
        console.print(f"  {repo.repo_id}{at}: {len(repo.files)} files, {format_bytes(repo.size_bytes)}")
    console.print(f"{plan.name}: {format_bytes(plan.size_bytes)} to download into {model_store.hub_cache_dir()}")
    if not yes and not typer.confirm("Download now?", default=False):
        console.print("Nothing downloaded.")
        raise typer.Exit(1)
    try:
        paths = model_store.pull(name, plan=plan)
    except model_store.HubError as exc:
        raise _fail(str(exc)) from exc
    for path in paths:
        console.print(f"[green]ok[/] {path}")
    pins = model_store.recorded_revisions()
    for repo in plan.repos:
        if repo.repo_id in pins:
            console.print(f"pinned {repo.repo_id} at {pins[repo.repo_id]} (loaders read this revision)")


def _revisions(name: str, values: list[str]) -> dict[str, str]:
    """``--revision`` values as repository id -> revision; ``KeyError`` naming what is wrong
    (``ValueError`` for an unknown set)."""
    if not values:
        return {}
    repos = [repo.repo_id for repo in model_store.get_model_set(name).repos]
    revisions: dict[str, str] = {}
    for value in values:
        repo_id, sep, rev = value.rpartition("=")
        if not sep:
            if len(repos) != 1:
                raise KeyError(
                    f"{name} holds {len(repos)} repositories ({', '.join(repos)}): give --revision REPO_ID=REV."
                )
            repo_id, rev = repos[0], value
        if not rev.strip() or repo_id.strip() not in repos:
            raise KeyError(f"{value!r} is not REV or REPO_ID=REV for one of {', '.join(repos)}.")
        revisions[repo_id.strip()] = rev.strip()
    return revisions
