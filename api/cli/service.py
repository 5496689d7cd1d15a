"""The service's commands: ``imageforge serve``, ``imageforge users create``, ``imageforge token``.

``register(app)`` mounts them on the main typer app (``api/cli/__init__.py``). Settings come from the
environment and ``.env`` like the server's, so a user created here is a user of the server
that uses the same database.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlmodel import Session

from imageforge.api.core.config import Settings, get_settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.logging import log_config
from imageforge.api.core.security import create_access_token
from imageforge.api.crud import user as crud
from imageforge.api.models.user import UserCreate

__all__ = ["register", "serve", "token", "users_app"]

users_app = typer.Typer(help="Manage the users who may call the API.", no_args_is_help=True)


def _settings() -> Settings:
    try:
        settings = get_settings()
        settings.check_secrets()
    except ValidationError as exc:
        messages = "; ".join(error["msg"] for error in exc.errors(include_url=False))
        typer.echo(f"Invalid settings: {messages}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        typer.echo(f"Invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    return settings


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: IMAGEFORGE_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: IMAGEFORGE_PORT, 8000).", min=1, max=65535)] = None,
    workers: Annotated[
        int | None, typer.Option(help="Storyboards run at the same time (IMAGEFORGE_WORKERS).", min=1)
    ] = None,
    dev: Annotated[bool, typer.Option("--dev", help="Dev mode: no authentication, one local user.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the API server (SQLite under ./data unless IMAGEFORGE_DATABASE_URL says otherwise)."""
    import uvicorn

    from imageforge.api.main import create_app

    overrides: dict[str, object] = {}
    if workers is not None:
        overrides["workers"] = workers
    if dev:
        overrides["dev_mode"] = True
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages = "; ".join(error["msg"] for error in exc.errors(include_url=False))
        typer.echo(f"Invalid settings: {messages}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=log_level,
        log_config=log_config(log_level),
    )


@users_app.command("create")
def create_user(
    email: Annotated[str, typer.Option(help="The user's e-mail address (their login name).")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters.")
    ],
) -> None:
    """Register a user in the service's database."""
    settings = _settings()
    try:
        user_create = UserCreate.model_validate({"email": email, "password": password})
    except ValidationError as exc:
        messages = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        typer.echo(f"Invalid user: {messages}", err=True)
        raise typer.Exit(2) from exc
    engine = create_db_engine(settings)
    try:
        init_db(engine)
        with Session(engine) as session:
            user = crud.create_user(session=session, user_create=user_create)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo(f"Created user {user.id}: {user.email}")


def token(
    email: Annotated[str, typer.Option(help="A registered user's e-mail address.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="That user's password.")],
    expires_minutes: Annotated[
        int | None, typer.Option(min=1, help="Lifetime (default: IMAGEFORGE_ACCESS_TOKEN_EXPIRE_MINUTES).")
    ] = None,
) -> None:
    """Print a bearer token for a user (use it as `Authorization: Bearer <token>`)."""
    settings = _settings()
    engine = create_db_engine(settings)
    try:
        init_db(engine)
        with Session(engine) as session:
            user = crud.authenticate(session=session, email=email, password=password)
    finally:
        engine.dispose()
    if user is None or not user.is_active:
        typer.echo("Incorrect email or password, or an inactive user.", err=True)
        raise typer.Exit(1)
    lifetime = timedelta(minutes=expires_minutes) if expires_minutes is not None else None
    typer.echo(create_access_token(user.id, settings, expires_delta=lifetime))  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    """Mount ``serve``, ``token`` and the ``users`` group on the main CLI."""
    app.command("serve")(serve)
    app.command("token")(token)
    app.add_typer(users_app, name="users")
