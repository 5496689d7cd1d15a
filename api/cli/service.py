"""The service's commands: ``imageforge serve``, ``imageforge users create|deactivate|delete|password``,
``imageforge token``.

``register(app)`` mounts them on the main typer app (``api/cli/__init__.py``). Settings come from the
environment and ``.env`` like the server's, so a user created here is a user of the server
that uses the same database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlmodel import Session

from imageforge.api.core.config import Settings, get_settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.logging import log_config
from imageforge.api.core.security import create_access_token
from imageforge.api.crud import user as crud
from imageforge.api.models.user import User, UserCreate

if TYPE_CHECKING:
    import redis

__all__ = ["register", "serve", "token", "users_app"]

users_app = typer.Typer(help="Manage the users who may call the API.", no_args_is_help=True)


def checked_settings(build: Callable[[], Settings]) -> Settings:
    """``build()`` the settings and run its start-up checks (it raises ValueError): a bad
    value is one error line and exit code 2, for every command that starts a process."""
    try:
        return build()
    except ValidationError as exc:
        messages = "; ".join(error["msg"] for error in exc.errors(include_url=False))
        typer.echo(f"Invalid settings: {messages}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        typer.echo(f"Invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc


def _with_secrets_checked() -> Settings:
    settings = get_settings()
    settings.check_secrets()
    return settings


def _settings() -> Settings:
    return checked_settings(_with_secrets_checked)


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

    def build() -> Settings:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        settings.check_execution()
        return settings

    settings = checked_settings(build)
    if settings.broker_url:
        _require_broker(settings.broker_url)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=log_level,
        log_config=log_config(log_level),
    )


def _require_broker(url: str) -> None:
    """One line and exit 2 when the broker does not answer, rather than a start-up traceback."""
    import redis

    from imageforge.api.core.redact import redact_url

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        typer.echo(f"Cannot reach the broker {redact_url(url)} (IMAGEFORGE_BROKER_URL): {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        client.close()


@users_app.command("create")
def create_user(
    email: Annotated[str, typer.Option(help="The user's e-mail address (their login name).")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters.")
    ],
    admin: Annotated[
        bool,
        typer.Option("--admin", help="An administrator: sees deployment details (/health) and may run deep checks."),
    ] = False,
) -> None:
    """Register a user in the service's database."""
    settings = _settings()
    try:
        user_create = UserCreate.model_validate({"email": email, "password": password, "is_superuser": admin})
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
    typer.echo(f"Created {'administrator' if user.is_superuser else 'user'} {user.public_id}: {user.email}")


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
    typer.echo(create_access_token(user, settings, expires_delta=lifetime))


def _change_user(email: str, change: Callable[[Session, User], str]) -> None:
    """Apply ``change`` to the user with this e-mail and print what it says; exit 2 when there is
    no such user. API processes that keep users in memory are told after the change commits;
    when they could not be told, nothing is changed (exit 2)."""
    settings = _settings()
    engine = create_db_engine(settings)
    try:
        init_db(engine)
        with Session(engine) as session:
            user = crud.get_user_by_email(session=session, email=email)
            if user is None:
                typer.echo(f"No user with the e-mail {email!r}.", err=True)
                raise typer.Exit(2)
            public_id = user.public_id  # before the change: a deletion gives the row a new one
            broker = _revocation_broker(settings, session, changed=False)
            message = change(session, user)
            if broker is None:  # an API process that caches users may have started meanwhile
                broker = _revocation_broker(settings, session, changed=True)
            if broker is not None:
                _publish_revocation(broker, public_id)
            typer.echo(message)
    finally:
        engine.dispose()


def _revocation_broker(settings: Settings, session: Session, *, changed: bool) -> redis.Redis | None:
    """Where the API processes that cache this database's users hear of a change (None: no
    process does)."""
    from imageforge.api.services.revocations import RevocationUnheardError, revocation_client

    try:
        return revocation_client(settings.broker_url, crud.get_user_cache_registration(session=session))
    except RevocationUnheardError as exc:
        _unheard(exc, changed=changed)


def _publish_revocation(broker: redis.Redis, public_id: str) -> None:
    from imageforge.api.services.revocations import RevocationUnheardError, publish_revocation

    try:
        publish_revocation(broker, public_id)
    except RevocationUnheardError as exc:
        _unheard(exc, changed=True)


def _unheard(exc: Exception, *, changed: bool) -> NoReturn:
    """Exit 2 when nothing was changed yet, 1 when the change is made but unheard."""
    if not changed:
        typer.echo(f"{exc} Nothing was changed.", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{exc} The change is made, but the API processes accept the old tokens until restarted.", err=True)
    raise typer.Exit(1) from exc


EmailOption = Annotated[str, typer.Option(help="The user's e-mail address.")]


@users_app.command("deactivate")
def deactivate_user(email: EmailOption) -> None:
    """Stop a user from signing in; every token they hold stops working at once."""

    def change(session: Session, user: User) -> str:
        crud.deactivate_user(session=session, user=user)
        return f"Deactivated {email}; their tokens are revoked."

    _change_user(email, change)


@users_app.command("delete")
def delete_user(
    email: EmailOption,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a user's account: e-mail, password and tokens. Their generations stay, owned by an
    anonymous tombstone, until retention removes them."""
    if not yes:
        typer.confirm(f"Delete the account {email}?", abort=True)

    def change(session: Session, user: User) -> str:
        crud.delete_user(session=session, user=user)
        return f"Deleted {email}; their tokens are revoked."

    _change_user(email, change)


@users_app.command("password")
def set_password(
    email: EmailOption,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters.")
    ],
) -> None:
    """Set a user's password; every token issued before stops working at once."""
    if not 8 <= len(password) <= 128:
        typer.echo("Invalid password: it must have 8 to 128 characters.", err=True)
        raise typer.Exit(2)

    def change(session: Session, user: User) -> str:
        crud.set_password(session=session, user=user, password=password)
        return f"Changed the password of {email}; their older tokens are revoked."

    _change_user(email, change)


def register(app: typer.Typer) -> None:
    """Mount ``serve``, ``token`` and the ``users`` group on the main CLI."""
    app.command("serve")(serve)
    app.command("token")(token)
    app.add_typer(users_app, name="users")
