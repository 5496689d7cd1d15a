"""Passwords and access tokens.

Passwords are hashed with argon2id through pwdlib. Hashes written by earlier versions
(``scrypt$n$r$p$salt$hash``, the standard library's scrypt) still verify, and
:func:`verify_and_update` hands back an argon2 replacement when one does, so a login
upgrades the stored hash. Tokens are JWTs: HS256 with the secret from settings, or RS256
with PEM key files, chosen by ``Settings.jwt_algorithm``. A token names its user by a random
public id and carries the user's token version, which deactivation, a password change or a
delete makes stale: the caller's deps check it against the database on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import jwt
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from imageforge.api.core.config import Settings

__all__ = [
    "InvalidTokenError",
    "TokenClaims",
    "TokenSubject",
    "create_access_token",
    "decode_access_token",
    "hash_password",
    "verify_and_update",
    "verify_dummy",
    "verify_password",
]

#: argon2id with 64 MiB and 3 passes (above OWASP's minimum of 19 MiB, 2 passes) on one lane.
#: The library's default of 4 lanes ran one verification on every core at once (258 ms of CPU
#: in 165 ms on the 2-core test machine), stalling the API, its database and the workers
#: beside it for each login; one lane takes one core for ~200 ms and leaves the rest serving.
#: Hashes with other parameters still verify, and a login re-hashes them with these.
_password_hash = PasswordHash((Argon2Hasher(time_cost=3, memory_cost=65536, parallelism=1),))
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
        verify_dummy(password)  # the same work as a real hash: timing must not single this user out
        return False, None


def verify_password(password: str, hashed: str) -> bool:
    return verify_and_update(password, hashed)[0]


_dummy_hashes: dict[int, str] = {}


def verify_dummy(password: str) -> None:
    """The work of a real verification, against a hash no password matches. A login for an
    unknown e-mail runs it so that it takes as long as one for a known e-mail: the answer's
    timing must not tell which addresses have accounts."""
    hasher = _password_hash
    dummy = _dummy_hashes.get(id(hasher))
    if dummy is None:
        dummy = _dummy_hashes.setdefault(id(hasher), hasher.hash(uuid.uuid4().hex))
    hasher.verify(password, dummy)


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


class TokenSubject(Protocol):
    """What a token names: the user's random public id and their current token version."""

    @property
    def public_id(self) -> str: ...

    @property
    def token_version(self) -> int: ...


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    version: int
    jti: str
    issued_at: datetime


_PUBLIC_ID = re.compile(r"[0-9a-f]{32}")


def create_access_token(user: TokenSubject, settings: Settings, *, expires_delta: timedelta | None = None) -> str:
    """A JWT naming the user by public id (``sub``) and token version (``ver``), with its own
    id (``jti``) and issue time (``iat``). Raising the user's version revokes it."""
    now = datetime.now(UTC)
    lifetime = expires_delta if expires_delta is not None else timedelta(minutes=settings.access_token_expire_minutes)
    payload = {
        "sub": user.public_id,
        "ver": user.token_version,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + lifetime,
        "type": "access",
    }
    return jwt.encode(payload, _signing_key(settings), algorithm=settings.jwt_algorithm)


def _reason(exc: jwt.PyJWTError) -> str:
    """Why a token was refused, in the caller's terms (never PyJWT's own message)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired; sign in again"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token was not signed by this server"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "the token is signed with an algorithm this server does not accept"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim!r} claim"
    if isinstance(exc, jwt.DecodeError):
        return "the token is malformed"
    return "the token is not valid"


def decode_access_token(token: str, settings: Settings) -> TokenClaims:
    """The token's claims, or ``InvalidTokenError`` saying why not (in words fit for a 401)."""
    try:
        payload = jwt.decode(
            token,
            _verifying_key(settings),
            algorithms=[settings.jwt_algorithm],
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(_reason(exc)) from exc
    if payload.get("type") != "access":
        raise InvalidTokenError("the token is not an access token")
    subject, version, jti = payload.get("sub"), payload.get("ver"), payload.get("jti")
    if not isinstance(subject, str) or not _PUBLIC_ID.fullmatch(subject):
        raise InvalidTokenError("the token does not name a user of this server")
    if type(version) is not int or version < 0 or not isinstance(jti, str):
        raise InvalidTokenError("the token was issued by an older version of this server; sign in again")
    return TokenClaims(subject=subject, version=version, jti=jti, issued_at=datetime.fromtimestamp(payload["iat"], UTC))
