"""Settings validation, passwords, tokens (HS256 and RS256), login and dev mode."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from datetime import timedelta
from pathlib import Path

import argon2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from imageforge.api.core import security
from imageforge.api.core.config import Settings
from imageforge.api.core.security import (
    InvalidTokenError,
    create_access_token,
    decode_access_token,
    hash_password,
    verify_and_update,
    verify_password,
)
from imageforge.api.main import create_app
from imageforge.api.models.user import User
from tests.api.support import (
    CHEAP_PASSWORD_HASH,
    DEFAULT_PASSWORD_HASH,
    SECRET,
    FakePipeline,
    add_user,
    make_settings,
)


def test_placeholder_or_short_secret_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        create_app(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="at least 32"):
        Settings(_env_file=None, jwt_secret="short").check_secrets()  # type: ignore[call-arg]
    Settings(_env_file=None, dev_mode=True).check_secrets()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="jwt_private_key_path and jwt_public_key_path"):
        Settings(_env_file=None, jwt_algorithm="RS256").check_secrets()  # type: ignore[call-arg]


def test_settings_read_the_environment_and_the_unprefixed_openai_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEFORGE_JWT_SECRET", SECRET)
    monkeypatch.setenv("IMAGEFORGE_WORKERS", "3")
    monkeypatch.setenv("IMAGEFORGE_SCORING__SCORERS", '["offline"]')
    monkeypatch.setenv("IMAGEFORGE_LLM__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IMAGEFORGE_GENERATOR__BACKEND", "sketch")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.workers == 3
    assert settings.scoring.scorers == ("offline",)
    assert settings.llm.base_url == "http://127.0.0.1:9/v1" and settings.generator.backend == "sketch"
    assert settings.default_backends().generator.cache_dir is not None
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "sk-test"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert not settings.is_postgres
    assert Settings(_env_file=None, database_url="postgresql://u:p@db/x").is_postgres  # type: ignore[call-arg]


def test_passwords_are_salted_and_verified_with_the_service_argon2id_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    # The other API tests hash with a cheap profile (tests/api/conftest.py); this one uses the real one.
    monkeypatch.setattr(security, "_password_hash", DEFAULT_PASSWORD_HASH)
    first, second = hash_password("correct horse"), hash_password("correct horse")
    profile = "m=65536,t=3,p=1"  # one lane: a login takes one core, not all of them
    assert first != second and first.startswith(f"$argon2id$v=19${profile}$")
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("wrong horse", first)
    assert not verify_password("correct horse", "garbage")
    assert verify_and_update("correct horse", first) == (True, None)  # current: nothing to upgrade
    weaker = CHEAP_PASSWORD_HASH.hash("correct horse")
    valid, upgraded = verify_and_update("correct horse", weaker)  # weaker parameters: upgraded at login
    assert valid and upgraded is not None and upgraded.startswith(f"$argon2id$v=19${profile}$")
    four_lanes = argon2.PasswordHasher().hash("correct horse")  # the library's default, as earlier versions stored
    assert f"p={argon2.DEFAULT_PARALLELISM}$" in four_lanes and argon2.DEFAULT_PARALLELISM != 1
    valid, upgraded = verify_and_update("correct horse", four_lanes)
    assert valid and upgraded is not None and upgraded.startswith(f"$argon2id$v=19${profile}$")
    with pytest.raises(ValueError, match="password"):
        hash_password("")


def legacy_scrypt_hash(password: str) -> str:
    """How earlier versions hashed passwords (api/auth.py before pwdlib), copied to make one."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32)
    encode = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    return f"scrypt${2**14}$8$1${encode(salt)}${encode(digest)}"


def test_legacy_scrypt_hashes_still_verify_and_are_upgraded_at_login(client: TestClient) -> None:
    legacy = legacy_scrypt_hash("old-pass-123")
    assert verify_password("old-pass-123", legacy) and not verify_password("wrong-pass", legacy)
    assert verify_and_update("wrong-pass", legacy) == (False, None)
    valid, upgraded = verify_and_update("old-pass-123", legacy)
    assert valid and upgraded is not None and upgraded.startswith("$argon2id$")
    assert verify_and_update("old-pass-123", upgraded) == (True, None)  # current: nothing to upgrade

    add_user(client, "olga@example.com", "placeholder-1")
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = session.exec(select(User).where(User.email == "olga@example.com")).one()
        user.hashed_password = legacy  # a user stored by an earlier version
        session.add(user)
        session.commit()
    wrong = client.post("/api/login/access-token", data={"username": "olga@example.com", "password": "nope-nope"})
    assert wrong.status_code == 400
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert session.exec(select(User).where(User.email == "olga@example.com")).one().hashed_password == legacy
    login = client.post("/api/login/access-token", data={"username": "olga@example.com", "password": "old-pass-123"})
    assert login.status_code == 200 and login.json()["token_type"] == "bearer"
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        stored = session.exec(select(User).where(User.email == "olga@example.com")).one().hashed_password
    assert stored.startswith("$argon2id$") and verify_password("old-pass-123", stored)
    again = client.post("/api/login/access-token", data={"username": "olga@example.com", "password": "old-pass-123"})
    assert again.status_code == 200


def test_hs256_tokens_round_trip_and_reject_tampering_and_expiry(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    user = User(email="t@example.com", hashed_password="!", token_version=3)
    token = create_access_token(user, settings)
    claims = decode_access_token(token, settings)
    assert claims.subject == user.public_id and claims.version == 3 and len(claims.jti) == 32
    assert decode_access_token(create_access_token(user, settings), settings).jti != claims.jti
    other = make_settings(tmp_path, jwt_secret="another-secret-" + "y" * 40)
    with pytest.raises(InvalidTokenError, match="not signed by this server"):
        decode_access_token(token, other)
    with pytest.raises(InvalidTokenError, match="expired"):
        decode_access_token(create_access_token(user, settings, expires_delta=timedelta(seconds=-5)), settings)
    with pytest.raises(InvalidTokenError, match="malformed"):
        decode_access_token("not.a.token", settings)


def test_rs256_tokens_use_the_key_files(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "jwt.pem"
    public = tmp_path / "jwt.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    settings = make_settings(tmp_path, jwt_algorithm="RS256", jwt_private_key_path=private, jwt_public_key_path=public)
    user = User(email="t@example.com", hashed_password="!")
    token = create_access_token(user, settings)
    assert decode_access_token(token, settings).subject == user.public_id
    hs = make_settings(tmp_path)
    with pytest.raises(InvalidTokenError):
        decode_access_token(token, hs)  # an RS256 token is not accepted where HS256 is configured


def test_login_me_and_unauthenticated_requests(client: TestClient) -> None:
    add_user(client, "carol@example.com", "s3cret-pass")
    assert client.get("/api/users/me").status_code == 401
    assert client.get("/api/generations").headers["www-authenticate"] == "Bearer"
    assert client.get("/api/users/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    wrong = client.post("/api/login/access-token", data={"username": "carol@example.com", "password": "nope-nope"})
    assert wrong.status_code == 400
    assert client.post("/api/login/access-token", data={"username": "carol@example.com"}).status_code == 422
    token = client.post(
        "/api/login/access-token", data={"username": "carol@example.com", "password": "s3cret-pass"}
    ).json()
    assert token["token_type"] == "bearer"
    me = client.get("/api/users/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == "carol@example.com"
    assert "hashed_password" not in me.json()


def test_a_token_for_a_deleted_or_unknown_user_is_refused(client: TestClient) -> None:
    stranger = User(email="nobody@example.com", hashed_password="!")  # never stored
    token = create_access_token(stranger, client.app.state.settings)  # type: ignore[attr-defined]
    assert client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_dev_mode_disables_auth_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path, dev_mode=True, jwt_secret="changethis")
    app = create_app(settings, pipeline=FakePipeline(settings.trace_root))
    with caplog.at_level(logging.WARNING, logger="imageforge.api"), TestClient(app) as client:
        me = client.get("/api/users/me")
        assert me.status_code == 200 and me.json()["email"] == "dev@localhost"
        accepted = client.post("/api/generate", json={"prompt": "a quiet harbour", "num_scenes": 1})
        assert accepted.status_code == 202
    assert any("DEV MODE" in record.getMessage() for record in caplog.records)
