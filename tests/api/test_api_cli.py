"""``imageforge users create`` and ``imageforge token`` against a temporary database."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from imageforge.api.cli.service import register
from imageforge.api.core.config import Settings, get_settings
from imageforge.api.core.security import decode_access_token
from tests.api.support import cli_environment


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    cli_environment(tmp_path, monkeypatch)
    app = typer.Typer()
    register(app)
    yield app
    get_settings.cache_clear()


def test_users_create_then_token(cli: typer.Typer) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["users", "create", "--email", "dana@example.com", "--password", "long-enough-1"])
    assert created.exit_code == 0, created.output
    assert "dana@example.com" in created.output
    again = runner.invoke(cli, ["users", "create", "--email", "dana@example.com", "--password", "long-enough-1"])
    assert again.exit_code == 1 and "already registered" in again.output

    issued = runner.invoke(cli, ["token", "--email", "dana@example.com", "--password", "long-enough-1"])
    assert issued.exit_code == 0, issued.output
    claims = decode_access_token(issued.output.strip(), Settings(_env_file=None))  # type: ignore[call-arg]
    assert len(claims.subject) == 32 and claims.subject in created.output  # the random public id, not "1"
    wrong = runner.invoke(cli, ["token", "--email", "dana@example.com", "--password", "not-the-one"])
    assert wrong.exit_code == 1


def test_users_create_validates_and_reads_the_password_from_a_prompt(cli: typer.Typer) -> None:
    runner = CliRunner()
    short = runner.invoke(cli, ["users", "create", "--email", "eve@example.com", "--password", "short"])
    assert short.exit_code == 2 and "password" in short.output
    bad_email = runner.invoke(cli, ["users", "create", "--email", "not-an-email", "--password", "long-enough-1"])
    assert bad_email.exit_code == 2 and "email" in bad_email.output
    prompted = runner.invoke(
        cli, ["users", "create", "--email", "eve@example.com"], input="long-enough-1\nlong-enough-1\n"
    )
    assert prompted.exit_code == 0, prompted.output


def test_commands_refuse_a_placeholder_secret(cli: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFORGE_JWT_SECRET", "changethis")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["users", "create", "--email", "x@example.com", "--password", "long-enough-1"])
    assert result.exit_code == 2 and "placeholder" in result.output
