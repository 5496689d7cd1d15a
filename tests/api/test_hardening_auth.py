"""Issue 10, findings 1, 2, 3, 6, 7, 8 and the deep health check of 9, replayed against a real
uvicorn process (tests/api/server.py): what a caller could learn or do before, and what the
service answers now.

The server trusts proxy headers from 127.0.0.1 (uvicorn's default), so ``X-Forwarded-For``
gives each test its own client address for the per-address login throttle, and
``X-Forwarded-Proto: https`` stands in for a TLS-terminating proxy.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import httpx
import jwt
import pytest
from sqlmodel import Session

from imageforge.api.core import security
from imageforge.api.core.config import Settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.redact import redact, redact_path, redact_text, redact_url
from imageforge.api.crud import user as crud
from imageforge.api.routes.signin import safe_next
from tests.api.server import SECRET, Server, wait_until
from tests.api.support import DEFAULT_PASSWORD_HASH

pytestmark = pytest.mark.integration  # uvicorn processes

#: An endpoint URL with credentials in both places a URL can hold them.
SECRET_URL = "http://llmuser:hunter2-pass@127.0.0.1:9/v1?api-key=sk-topsecret-42"
SECRETS = ("hunter2-pass", "sk-topsecret-42")
SMALL = {"num_variations": 1, "max_enhancement_iterations": 1, "max_retries": 0, "resolution": 64}
IMAGEFORGE = Path(sys.executable).parent / "imageforge"
_addresses = count(1)


def address() -> dict[str, str]:
    """A client address of its own (the per-address throttle counts each separately)."""
    return {"X-Forwarded-For": f"10.0.{next(_addresses)}.1"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    instance = Server(
        tmp_path_factory.mktemp("hardening"),
        {
            "IMAGEFORGE_LLM__BACKEND": "auto",  # builds a client for SECRET_URL; no request is made
            "IMAGEFORGE_LLM__BASE_URL": SECRET_URL,
            "IMAGEFORGE_LOGIN_LIMIT_PER_ACCOUNT": "5/minute",
            "IMAGEFORGE_LOGIN_LIMIT_PER_ADDRESS": "8/minute",
        },
        log_level="info",
    )
    with instance:
        yield instance


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def login(http: httpx.Client, email: str, password: str, **headers: str) -> httpx.Response:
    return http.post(
        "/api/login/access-token", data={"username": email, "password": password}, headers=headers or address()
    )


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """``imageforge …`` against the server's database (its settings come from the environment)."""
    return subprocess.run(
        [str(IMAGEFORGE), *args], env=server.environment(), capture_output=True, text=True, timeout=120, check=False
    )


def submit(http: httpx.Client, headers: dict[str, str]) -> str:
    response = http.post(
        "/api/generate",
        # The heuristic agents: the server's configured LLM is SECRET_URL, which refuses every
        # connection, and each agent would spend its retries on it before falling back.
        json={"prompt": "a lighthouse", "num_scenes": 1, "settings": {**SMALL, "backends": {"llm": "heuristic"}}},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["generation_id"])


# 1. Public answers ---------------------------------------------------------------------------
def test_health_tells_anonymous_callers_the_status_only_and_redacts_secrets_everywhere(
    server: Server, http: httpx.Client
) -> None:
    anonymous = http.get("/health")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "healthy"}

    user = http.get("/health", headers=server.add_user("health-user@example.com")).json()
    assert user["queue_size"] > 0 and "configured" not in user["backends"] and "dev_mode" not in user

    admin = http.get("/health", headers=server.add_user("health-admin@example.com", admin=True))
    text = admin.text
    assert admin.status_code == 200 and not any(secret in text for secret in SECRETS), text
    configured = admin.json()["backends"]["configured"]["llm"]["base_url"]
    assert configured == "http://llmuser:***@127.0.0.1:9/v1?api-key=***"  # which endpoint, not its keys
    assert any("127.0.0.1:9" in note for note in admin.json()["backends"]["notes"])

    for path in ("/metrics", "/api/estimate", "/openapi.json"):
        public = http.get(path)
        assert public.status_code == 200 and not any(secret in public.text for secret in SECRETS), path
        assert str(server.root) not in public.text, path  # no server paths either

    assert not any(secret in server.log() for secret in SECRETS)


def test_imageforge_serve_logs_neither_endpoint_credentials_nor_tokens(tmp_path: Path) -> None:
    """``imageforge serve`` (the project's log configuration) at info level: the start-up notes
    name the LLM endpoint, and the access log names every request's path."""
    config = Server(tmp_path, {"IMAGEFORGE_LLM__BACKEND": "auto", "IMAGEFORGE_LLM__BASE_URL": SECRET_URL})
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(IMAGEFORGE), "serve", "--port", str(config.port), "--log-level", "info"],
            cwd=tmp_path,
            env=config.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=config.base_url, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            token = config.add_user("serve@example.com")["Authorization"].removeprefix("Bearer ")
            assert http.get(f"/api/generations?token={token}").status_code == 401  # a query token is no credential here
            assert http.get(f"/traces?token={token}", follow_redirects=False).status_code == 303
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log_path.read_text()
    assert "LLM: " in text and "127.0.0.1:9" in text  # the note was logged ...
    assert "llmuser:***@" in text and not any(secret in text for secret in SECRETS), text  # ... without secrets
    assert "/traces?token=***" in text and token not in text and token[-20:] not in text


def test_the_backends_a_run_records_are_redacted() -> None:
    """What ``describe()`` gives summary.json, and the notes the log and /health show, pass
    through the redaction where the api builds the backends."""
    from types import SimpleNamespace

    from imageforge.api.services.backends import _redacted
    from imageforge.graph.services import Services

    remote = SimpleNamespace(name="remote", model=SECRET_URL)
    scorers = SimpleNamespace(infos=list, consistency=remote, missing={})
    built = _redacted(Services(llm=None, generator=remote, scorers=scorers, notes=[f"LLM: m at {SECRET_URL}"]))  # type: ignore[arg-type]
    described = built.describe()
    assert described["generator"]["model"] == "http://llmuser:***@127.0.0.1:9/v1?api-key=***"
    assert not any(secret in str(described) + " ".join(built.notes) for secret in SECRETS)


def test_redaction_keeps_the_shape_and_drops_the_secrets() -> None:
    assert redact_url(SECRET_URL) == "http://llmuser:***@127.0.0.1:9/v1?api-key=***"
    assert redact_url("https://host/v1") == "https://host/v1"
    assert redact_path("/traces/g1?token=eyJ.a.b&fragment=true") == "/traces/g1?token=***&fragment=***"
    assert redact_text(f"calling {SECRET_URL} failed") == "calling http://llmuser:***@127.0.0.1:9/v1?api-key=*** failed"
    cleaned = redact({"jwt_secret": "s", "openai_api_key": True, "password": None, "max_tokens": 5, "cache_dir": "/c"})
    assert cleaned == {
        "jwt_secret": "***",
        "openai_api_key": True,
        "password": None,
        "max_tokens": 5,
        "cache_dir": "/c",
    }


# 2. Login throttle and timing ----------------------------------------------------------------
def test_login_is_throttled_per_account_with_retry_after(server: Server, http: httpx.Client) -> None:
    server.add_user("target@example.com", "right-password-1")
    answers = [login(http, "target@example.com", f"guess-{i}").status_code for i in range(5)]
    assert answers == [400] * 5
    refused = login(http, "target@example.com", "guess-6")  # from another address: the account is what counts
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert "too many" in refused.json()["detail"].lower()
    # Even the right password waits until the window has room: guessing cannot continue.
    assert login(http, "target@example.com", "right-password-1").status_code == 429


def test_login_is_throttled_per_client_address(server: Server, http: httpx.Client) -> None:
    one_address = address()
    answers = [login(http, f"nobody-{i}@example.com", "whatever-1", **one_address).status_code for i in range(8)]
    assert answers == [400] * 8
    refused = login(http, "nobody-9@example.com", "whatever-1", **one_address)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert login(http, "nobody-9@example.com", "whatever-1").status_code == 400  # another address is not held


def test_unknown_and_known_emails_cost_the_same_work(
    server: Server, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Users hashed at the service's real cost (the API tests' conftest makes hashing cheap).
    monkeypatch.setattr(security, "_password_hash", DEFAULT_PASSWORD_HASH)
    for i in range(4):
        server.add_user(f"known-{i}@example.com", "right-password-1")
    login(http, "warm-up@example.com", "x-password")  # the server makes its dummy hash on first use
    known: list[float] = []
    unknown: list[float] = []
    for i in range(4):  # interleaved, so that load from elsewhere hits both alike
        for email, times in ((f"known-{i}@example.com", known), (f"unknown-{i}@example.com", unknown)):
            started = time.perf_counter()
            assert login(http, email, "wrong-password").status_code == 400
            times.append(time.perf_counter() - started)
    ratio = statistics.median(unknown) / statistics.median(known)
    # Before: ~3 ms against ~66 ms (a ratio of 0.05). Now both run one argon2 verification.
    assert 0.5 < ratio < 2.0, (known, unknown)


@pytest.mark.skipif(__import__("shutil").which("redis-server") is None, reason="redis-server is not installed")
def test_in_distributed_mode_the_login_counters_live_in_redis(tmp_path: Path) -> None:
    """Two API processes share one window: two throttles on the same Redis stand for them."""
    from imageforge.api.core.throttle import LoginThrottle, ThrottledError, ThrottleUnavailableError
    from tests.redis_server import redis_server

    with redis_server(tmp_path) as url:
        first, second = (LoginThrottle(per_account="3/minute", per_address="100/minute", storage_uri=url) for _ in "ab")
        first.attempt("shared@example.com", "10.9.0.1")
        second.attempt("shared@example.com", "10.9.0.2")
        first.attempt("shared@example.com", "10.9.0.3")
        with pytest.raises(ThrottledError) as refused:
            second.attempt("shared@example.com", "10.9.0.4")
        assert 1 <= refused.value.retry_after_s <= 60
        second.succeeded("shared@example.com")  # a correct password frees the account everywhere
        first.attempt("shared@example.com", "10.9.0.5")
    with pytest.raises(ThrottleUnavailableError):  # Redis gone: logins refused (503), not unthrottled
        first.attempt("shared@example.com", "10.9.0.6")


# 3. Tokens that die with their user ----------------------------------------------------------
def test_a_deleted_users_token_does_not_open_the_next_account(server: Server, http: httpx.Client) -> None:
    old = server.add_user("leaver@example.com")
    generation_id = submit(http, old)
    wait_until(http, f"/api/generations/{generation_id}", old, lambda d: d["status"] == "completed", 120)

    deleted = cli(server, "users", "delete", "--email", "leaver@example.com", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert http.get("/api/users/me", headers=old).status_code == 401  # at once, no cache window

    newcomer = server.add_user("leaver@example.com")  # the address is free again
    assert http.get("/api/users/me", headers=old).status_code == 401
    me = http.get("/api/users/me", headers=newcomer).json()
    assert re.fullmatch(r"[0-9a-f]{32}", me["id"])  # a random public id, not the integer key
    assert http.get("/api/generations", headers=newcomer).json()["count"] == 0  # nothing of the old user's
    assert http.get(f"/api/generations/{generation_id}", headers=newcomer).status_code == 404


def test_deactivation_and_a_new_password_revoke_tokens_at_once(server: Server, http: httpx.Client) -> None:
    headers = server.add_user("soon-inactive@example.com")
    assert http.get("/api/users/me", headers=headers).status_code == 200
    assert cli(server, "users", "deactivate", "--email", "soon-inactive@example.com").returncode == 0
    assert http.get("/api/users/me", headers=headers).status_code == 401
    refused = http.post("/api/generate", json={"prompt": "x", "num_scenes": 1}, headers=headers)
    assert refused.status_code == 401  # before: up to 30 s of submissions after deactivation

    headers = server.add_user("rotating@example.com", "first-password-1")
    changed = cli(server, "users", "password", "--email", "rotating@example.com", "--password", "second-password-2")
    assert changed.returncode == 0, changed.stderr
    stale = http.get("/api/users/me", headers=headers)
    assert stale.status_code == 401 and "revoked" in stale.json()["detail"]
    fresh = login(http, "rotating@example.com", "second-password-2")
    assert fresh.status_code == 200
    assert http.get("/api/users/me", headers=bearer(fresh.json()["access_token"])).status_code == 200

    missing = cli(server, "users", "deactivate", "--email", "no-such@example.com")
    assert missing.returncode == 2 and "No user" in missing.stderr and "Traceback" not in missing.stderr


def test_tokens_carry_jti_and_iat_and_malformed_claims_are_401(server: Server, http: httpx.Client) -> None:
    token = server.add_user("claims@example.com")["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert {"sub", "jti", "iat", "exp", "ver"} <= claims.keys() and re.fullmatch(r"[0-9a-f]{32}", claims["sub"])

    now = datetime.now(UTC)

    def forged(**changes: object) -> str:
        payload = {**claims, "iat": now, "exp": now + timedelta(minutes=5), **changes}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, SECRET, algorithm="HS256")

    cases = {
        "forty-digit sub": forged(sub="1" * 40),
        "integer sub": forged(sub=7),
        "no jti": forged(jti=None),
        "string version": forged(ver="0"),
        "garbage": "garbage",
        "three garbage segments": "a.b.c",
        "expired": forged(exp=now - timedelta(minutes=1)),
        "other key": jwt.encode({**claims}, "another-secret-" + "q" * 40, algorithm="HS256"),
    }
    for what, value in cases.items():
        response = http.get("/api/users/me", headers=bearer(value))
        assert response.status_code == 401, (what, response.text)
        detail = response.json()["detail"]
        # In the caller's terms: not PyJWT's messages, not int()'s.
        for internal in ("invalid literal", "int()", "Signature verification", "segments", "padding", "jwt"):
            assert internal not in detail, (what, detail)


def test_an_emptied_database_does_not_revive_old_tokens(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.start()
    try:
        old = server.add_user("first@example.com")
        server.stop()
        for path in (tmp_path / "data").glob("imageforge.db*"):
            path.unlink()  # a zero-length database: integer keys start again from 1
        server.start()
        new = server.add_user("second@example.com")
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            assert http.get("/api/users/me", headers=old).status_code == 401
            assert http.get("/api/users/me", headers=new).json()["email"] == "second@example.com"
    finally:
        server.stop()


def test_a_database_from_before_gets_the_new_columns(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite"
    with sqlite3.connect(database) as connection:  # the user table as earlier versions created it
        connection.execute(
            'CREATE TABLE "user" (email VARCHAR(255) NOT NULL, is_active BOOLEAN NOT NULL, id INTEGER NOT NULL, '
            "hashed_password VARCHAR NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id))"
        )
        connection.execute(
            'INSERT INTO "user" VALUES (?, 1, 1, ?, ?)',
            ("old@example.com", security.hash_password("old-password-1"), "2026-01-01 00:00:00"),
        )
    settings = Settings(_env_file=None, jwt_secret=SECRET, database_url=f"sqlite:///{database}")  # type: ignore[call-arg]
    engine = create_db_engine(settings)
    try:
        init_db(engine)
        init_db(engine)  # idempotent: every start runs it
        with Session(engine) as session:
            user = crud.authenticate(session=session, email="old@example.com", password="old-password-1")
            assert user is not None and re.fullmatch(r"[0-9a-f]{32}", user.public_id)
            assert user.token_version == 0 and user.is_superuser is False
            token = security.create_access_token(user, settings)
            assert security.decode_access_token(token, settings).subject == user.public_id
    finally:
        engine.dispose()


# 6. Tokens out of logs and addresses; the sign-in form ---------------------------------------
def test_no_token_reaches_the_access_log(server: Server, http: httpx.Client) -> None:
    headers = server.add_user("logged@example.com")
    token = headers["Authorization"].removeprefix("Bearer ")
    generation_id = submit(http, headers)
    wait_until(http, f"/api/generations/{generation_id}", headers, lambda d: d["status"] == "completed", 120)
    assert http.get(f"/api/generations/{generation_id}/events?token={token}").status_code == 200
    http.get(f"/traces/{generation_id}?token={token}&fragment=true", follow_redirects=False)
    time.sleep(0.5)  # the access log line is written after the response
    log = server.log()
    assert f"/api/generations/{generation_id}/events?token=***" in log  # the request was logged ...
    assert token not in log and token[-20:] not in log  # ... without its token


def test_a_page_link_with_a_token_no_longer_signs_anyone_in(server: Server, http: httpx.Client) -> None:
    token = server.add_user("victim@example.com")["Authorization"].removeprefix("Bearer ")
    response = http.get(f"/traces?token={token}", follow_redirects=False)
    assert response.status_code == 303 and "set-cookie" not in response.headers
    assert response.headers["location"] == "/login?next=%2Ftraces"  # the token is not carried along


def test_sign_in_refuses_cross_site_posts_and_sets_a_strict_cookie(server: Server, http: httpx.Client) -> None:
    token = server.add_user("attacker@example.com")["Authorization"].removeprefix("Bearer ")
    form = {"token": token, "next": "/traces"}
    for hostile in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        planted = http.post("/login", data=form, headers=hostile, follow_redirects=False)
        assert planted.status_code == 403 and "set-cookie" not in planted.headers, hostile

    own = {"Origin": server.base_url, "Sec-Fetch-Site": "same-origin"}
    signed_in = http.post("/login", data=form, headers=own, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/traces"
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # plain HTTP here
    http.cookies.clear()

    behind_tls = {"X-Forwarded-Proto": "https", "Origin": "https://" + server.base_url.split("://")[1]}
    secure = http.post("/login", data=form, headers=behind_tls, follow_redirects=False)
    assert secure.status_code == 303 and "; secure" in secure.headers["set-cookie"].lower()
    assert "max-age=31536000" in secure.headers["strict-transport-security"]
    http.cookies.clear()


def test_sign_in_with_a_password_is_throttled_and_redirects_only_here(server: Server, http: httpx.Client) -> None:
    server.add_user("form@example.com", "form-password-1")
    wrong = http.post("/login", data={"email": "form@example.com", "password": "nope-nope"}, headers=address())
    assert wrong.status_code == 400 and "Incorrect" in wrong.text and "<form" in wrong.text
    right = http.post(
        "/login",
        data={"email": "form@example.com", "password": "form-password-1", "next": "/traces/a b?x=1&y=<b>&token=t"},
        headers=address(),
        follow_redirects=False,
    )
    assert right.status_code == 303 and right.headers["location"] == "/traces/a%20b?x=1&y=%3Cb%3E"
    assert http.get("/traces").status_code == 200  # the cookie signs the pages in
    http.cookies.clear()
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        assert safe_next(hostile) == "/traces", hostile


# 7. Security headers on every page -----------------------------------------------------------
def test_pages_send_a_strict_csp_and_run_no_inline_script(server: Server, http: httpx.Client) -> None:
    headers = server.add_user("headers@example.com")
    generation_id = submit(http, headers)
    wait_until(http, f"/api/generations/{generation_id}", headers, lambda d: d["status"] == "completed", 120)
    for path in ("/login", "/traces", f"/traces/{generation_id}", "/docs", "/redoc"):
        page = http.get(path, headers=headers)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
        csp = page.headers["content-security-policy"]
        script_src = re.search(r"script-src ([^;]+)", csp)
        assert script_src and "'unsafe-inline'" not in script_src.group(1), (path, csp)
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"], path
        assert page.headers["x-frame-options"] == "DENY", path
        nonce = re.search(r"'nonce-([^']+)'", csp)
        for tag in re.findall(r"<script[^>]*>", page.text):  # every script is allowed by the policy
            assert 'src="/static/' in tag or (nonce and f'nonce="{nonce.group(1)}"' in tag), (path, tag)
        assert "style=" not in page.text or path in ("/docs", "/redoc"), path
    api = http.get("/api/users/me", headers=headers)
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    script = http.get("/static/trace.js")
    assert script.status_code == 200 and "EventSource" in script.text


# 8. Error bodies in the caller's terms -------------------------------------------------------
def test_a_corrupt_trace_answers_409_without_paths_or_contents(server: Server, http: httpx.Client) -> None:
    headers = server.add_user("corrupt@example.com")
    generation_id = submit(http, headers)
    wait_until(http, f"/api/generations/{generation_id}", headers, lambda d: d["status"] == "completed", 120)
    summary = server.root / "traces" / generation_id / "summary.json"
    summary.write_text('{"private": "CONTENT-OF-THE-FILE", ')
    for path in (f"/api/generations/{generation_id}/trace", f"/traces/{generation_id}"):
        response = http.get(path, headers=headers)
        assert response.status_code == 409, (path, response.text)
        assert "damaged" in response.json()["detail"]
        assert str(server.root) not in response.text and "CONTENT-OF-THE-FILE" not in response.text
        assert "Expecting" not in response.text and "pydantic" not in response.text.lower()
    traversal = http.get(
        f"/api/generations/{generation_id}/trace/files/..%2F..%2Fdata%2Fimageforge.db", headers=headers
    )
    assert traversal.status_code in (400, 404) and str(server.root) not in traversal.text


# 9. Deep health check ------------------------------------------------------------------------
def test_deep_health_finds_a_corrupt_database_page(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.start()
    try:
        admin = server.add_user("dba@example.com", admin=True)
        user = server.add_user("plain@example.com")
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            assert http.get("/health?deep=1").status_code == 401
            assert http.get("/health?deep=1", headers=user).status_code == 403
            sound = http.get("/health?deep=1", headers=admin)
            assert sound.status_code == 200 and sound.json()["database"] == "ok"
            for i in range(40):  # enough rows that the preset table has pages of its own
                preset = {"name": f"preset {i}", "settings": {"num_variations": 1}, "description": "x" * 200}
                assert http.post("/api/presets", json=preset, headers=user).status_code in (200, 201)
        server.stop()  # closes the database: the WAL is checkpointed into the file
        database = tmp_path / "data" / "imageforge.db"
        with sqlite3.connect(database) as connection:
            page_size = connection.execute("PRAGMA page_size").fetchone()[0]
            root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'preset'").fetchone()[0]
        with database.open("r+b") as handle:
            handle.seek((root - 1) * page_size)
            handle.write(b"\xff" * page_size)  # not a b-tree page any more
        server.start()
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            assert http.get("/health").json() == {"status": "healthy"}  # a ping cannot tell
            deep = http.get("/health?deep=1", headers=admin)
            body = deep.json()
            assert deep.status_code == 503 and body["status"] == "unhealthy" and body["database"] == "corrupt"
            assert any("integrity check failed" in issue for issue in body["issues"])
    finally:
        server.stop()
