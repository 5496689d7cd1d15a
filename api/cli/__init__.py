"""The `imageforge` command line (the console script ``imageforge = imageforge.api.cli:app``).

One module per command group: ``generate`` (a storyboard in-process), ``service`` (``serve``,
``users``, ``token``), ``worker`` (a Celery worker, distributed mode), ``models`` (the ML model
weights on disk), ``traces`` (pruning), ``eval`` (quality measured over a prompt set), and
``render`` (rich progress bars and result tables). Heavy imports wait until a command runs.
"""

from __future__ import annotations

import typer

from imageforge.api.cli.eval import eval_command
from imageforge.api.cli.generate import generate
from imageforge.api.cli.models import models_app
from imageforge.api.cli.service import register as register_service_commands
from imageforge.api.cli.traces import traces_app
from imageforge.api.cli.worker import worker

__all__ = ["app", "main"]

app = typer.Typer(
    name="imageforge",
    help="Turn a concept into a storyboard of scored reference images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Turn a concept into a storyboard of scored reference images."""


app.command()(generate)
app.command("eval")(eval_command)
app.add_typer(models_app, name="models")
app.add_typer(traces_app, name="traces")
register_service_commands(app)  # serve, token, users create
app.command()(worker)


def main() -> None:  # pragma: no cover - console entry point convenience
    app()
