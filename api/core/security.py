"""Passwords, access tokens and the cache of active users.

Passwords are hashed with argon2id through pwdlib. Hashes written by earlier versions
(``scrypt$n$r$p$salt$hash``, the standard library's scrypt) still verify, and
:func:`verify_and_update` hands back an argon2 replacement when one does, so a login
upgrades the stored hash. Tokens are JWTs: HS256 with the secret from settings, or RS256
with PEM key files, chosen by ``Settings.jwt_algorithm``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

import jwt
from cachetools import TTLCache
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from imageforge.api.core.config import Settings

__all__ = [
    "InvalidTokenError",
    "UserCache",
    "create_access_token",
    "decode_access_token",
    "hash_password",
    "verify_and_update",
    "verify_password",
]

V = TypeVar("V")

_password_hash = PasswordHash((Argon2Hasher(),))
_LEGACY_SCRYPT = "scrypt$"


class InvalidTokenError(ValueError):
    """A bearer token that is malformed, expired, or signed with another key."""


# Passwords ---------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """An argon2id hash (pwdlib's PHC string: the parameters travel with the hash)."""
    if not password:
        raise ValueError("`password` must not be empty.")
    return _password_hash.hash(password)


def _verify_legacy_scrypt(password: str, hashed: str) -> bool:
    """The ``scrypt$n$r$p$salt$hash`` format earlier versions wrote."""
    try:
        scheme, n, r, p, salt, expected = hashed.split("$")
        if scheme != "scrypt":
            return False
        expected_bytes = base64.b64decode(expected)
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected_bytes),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected_bytes)


def verify_and_update(password: str, hashed: str) -> tuple[bool, str | None]:
    """(whether ``password`` matches ``hashed``, a new hash to store or None).

    A new hash comes back for a legacy scrypt hash that matched, and for an argon2 hash
    whose parameters are weaker than the current ones. A value that is no known hash (the
    dev user's ``"!"``) matches nothing.
    """
    if hashed.startswith(_LEGACY_SCRYPT):
        valid = _verify_legacy_scrypt(password, hashed)
        return valid, (hash_password(password) if valid else None)
    try:
        return _password_hash.verify_and_update(password, hashed)
    except UnknownHashError:
        return False, None


def verify_password(password: str, hashed: str) -> bool:
    return verify_and_update(password, hashed)[0]


# Tokens ------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _read_key(path: Path) -> str:
    """PEM files are read once per process (every request verifies a token); rotating a key
    means restarting the server."""
    return path.read_text()


def _signing_key(settings: Settings) -> str:
    if settings.jwt_algorithm == "HS256":
        return settings.jwt_secret.get_secret_value()
    assert settings.jwt_private_key_path is not None  # enforced by the settings validator
    return _read_key(settings.jwt_private_key_path)


def _verifying_key(settings: Settings) -> str:
    if settings.jwt_algorithm == "HS256":
        return settings.jwt_secret.get_secret_value()
    assert settings.jwt_public_key_path is not None
    return _read_key(settings.jwt_public_key_path)


def create_access_token(subject: str | int, settings: Settings, *, expires_delta: timedelta | None = None) -> str:
    now = datetime.now(UTC)
    lifetime = expires_delta if expires_delta is not None else timedelta(minutes=settings.access_token_expire_minutes)
    payload = {"sub": str(subject), "iat": now, "exp": now + lifetime, "type": "access"}
    return jwt.encode(payload, _signing_key(settings), algorithm=settings.jwt_algorithm)


def decode_access_token(token: str, settings: Settings) -> str:
    """The token's subject (a user id), or ``InvalidTokenError`` saying why not."""
    try:
        payload = jwt.decode(
            token,
            _verifying_key(settings),
            algorithms=[settings.jwt_algorithm],
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(f"invalid token: {exc}") from exc
    if payload.get("type") != "access":
        raise InvalidTokenError("invalid token: not an access token")
    return str(payload["sub"])


# Active users ------------------------------------------------------------------------------
class UserCache(Generic[V]):
    """Users found active by a lookup, kept for ``ttl_s`` seconds by id (a cachetools ``TTLCache``).

    Tokens are still verified on every request; this only saves the user lookup, so a user
    deactivated in the database loses access within ``ttl_s``.
    """

    def __init__(
        self, *, ttl_s: float = 30.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_s < 0:
            raise ValueError(f"`ttl_s` must not be negative, got {ttl_s!r}.")
        self._lock = threading.Lock()  # cachetools caches are not thread-safe
        self._users: TTLCache[int, V] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=clock)

    def get(self, user_id: int) -> V | None:
        """The user, when found active less than ``ttl_s`` ago."""
        with self._lock:
            return self._users.get(user_id)

    def remember(self, user_id: int, user: V) -> None:
        with self._lock:
            self._users[user_id] = user
