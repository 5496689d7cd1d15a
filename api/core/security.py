"""Passwords and access tokens.

Passwords are hashed with the standard library's scrypt (memory-hard, no extra dependency).
Tokens are JWTs: HS256 with the secret from settings, or RS256 with PEM key files, chosen
by ``Settings.jwt_algorithm``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import jwt

from imageforge.api.settings import Settings

__all__ = ["InvalidTokenError", "create_access_token", "decode_access_token", "hash_password", "verify_password"]

_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_LEN = 32


class InvalidTokenError(ValueError):
    """A bearer token that is malformed, expired, or signed with another key."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash``: the parameters travel with the hash so they can be raised later."""
    if not password:
        raise ValueError("`password` must not be empty.")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, hashed: str) -> bool:
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
