"""``imageforge users`` and ``imageforge token`` against a temporary database, and the refusal
to change a user whom API processes cache unless they can be told (the Redis side is in
test_user_revocation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from imageforge.api.cli.service import register
from imageforge.api.core.config import Settings, get_settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.security import decode_access_token
from imageforge.api.crud import user as crud
from imageforge.api.main import create_app
from tests.api.server import free_port
from tests.api.support import FakePipeline, cli_environment, make_settings


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


def _registration(register_broker: str | None = None) -> object:
    """The database's user-cache registration; first written, as a distributed API process
    does at start-up, when ``register_broker`` is given."""
    engine = create_db_engine(get_settings())
    init_db(engine)
    with Session(engine) as session:
        if register_broker is not None:
            crud.register_user_cache(session=session, broker=register_broker)
        registration = crud.get_user_cache_registration(session=session)
    engine.dispose()
    return registration


def test_a_change_that_caching_api_processes_could_not_hear_is_refused(
    cli: typer.Typer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    email, password = "fay@example.com", "long-enough-1"
    assert runner.invoke(cli, ["users", "create", "--email", email, "--password", password]).exit_code == 0
    _registration("redis://redis.internal:6379/0")

    changes = [
        ["users", "deactivate", "--email", email],
        ["users", "password", "--email", email, "--password", "another-one-2"],
        ["users", "delete", "--email", email, "--yes"],
    ]
    for change in changes:
        refused = runner.invoke(cli, change)
        assert refused.exit_code == 2, refused.output
        assert "IMAGEFORGE_BROKER_URL" in refused.output and "redis://redis.internal:6379/0" in refused.output
        assert "Nothing was changed" in refused.output

    monkeypatch.setenv("IMAGEFORGE_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    get_settings.cache_clear()
    unreachable = runner.invoke(cli, changes[0])
    assert unreachable.exit_code == 2 and "Cannot reach the broker" in unreachable.output, unreachable.output
    assert runner.invoke(cli, ["token", "--email", email, "--password", password]).exit_code == 0  # unchanged

    # An embedded server started on this database serves it alone: the commands need no broker.
    monkeypatch.delenv("IMAGEFORGE_BROKER_URL")
    get_settings.cache_clear()
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, pipeline=FakePipeline(settings.trace_root))):
        pass
    assert _registration() is None
    done = runner.invoke(cli, changes[0])
    assert done.exit_code == 0 and "Deactivated" in done.output, done.output
