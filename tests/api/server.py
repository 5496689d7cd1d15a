"""A real ``uvicorn`` process on 127.0.0.1 for the server tier of the API tests (and the
benchmark): offline backends, a temporary data folder, users created in its database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from imageforge.api.core.config import Settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.security import create_access_token
from imageforge.api.crud import user as crud
from imageforge.api.models.user import UserCreate

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
SECRET = "server-tier-secret-" + "z" * 40

#: The sketch generator behind a sleep of ``SLOW_GENERATOR_DELAY_S`` seconds per call
#: (tests/slow_generator.py), configured as a deployment configures its own generator factory.
SLOW_GENERATOR_ENV = {"IMAGEFORGE_GENERATOR__BACKEND": "slow_generator:build"}

#: Offline backends and a small storyboard, so a run takes about a second on one core.
OFFLINE_ENV = {
    "IMAGEFORGE_LLM__BACKEND": "heuristic",
    "IMAGEFORGE_GENERATOR__BACKEND": "sketch",
    "IMAGEFORGE_SCORING__SCORERS": "offline",
    "IMAGEFORGE_DEVICE": "cpu",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    root: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: uvicorn's level: "info" writes the access log (tests that read what the log holds).
    log_level: str = "warning"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"server-{self.starts}.log"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEFORGE_") and k != "OPENAI_API_KEY"}
        env.update(
            {
                "IMAGEFORGE_DATA_DIR": str(self.root / "data"),
                "IMAGEFORGE_TRACE_ROOT": str(self.root / "traces"),
                "IMAGEFORGE_JWT_SECRET": SECRET,
                "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),  # tests/: slow_generator
                "OMP_NUM_THREADS": "1",
                **OFFLINE_ENV,
                **self.env_overrides,
            }
        )
        return env

    def settings(self) -> Settings:
        env = self.environment()
        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(env["IMAGEFORGE_DATA_DIR"]),
            trace_root=Path(env["IMAGEFORGE_TRACE_ROOT"]),
            jwt_secret=SECRET,
            database_url=env.get("IMAGEFORGE_DATABASE_URL"),
        )

    def __enter__(self) -> Server:
        """``with Server(...) as server``: started, and stopped on the way out."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0, **env_overrides: str) -> Server:
        self.env_overrides.update(env_overrides)
        self.starts += 1
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "imageforge.api.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                self.log_level,
            ],
            cwd=self.root,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not come up in {timeout_s} s:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what a crash looks like."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def log(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-4000:] for path in sorted(self.root.glob("server-*.log")))

    def add_user(self, email: str, password: str = "password123", *, admin: bool = False) -> dict[str, str]:
        """A user (an administrator with ``admin``) in the server's database, and bearer headers for it."""
        settings = self.settings()
        engine = create_db_engine(settings)
        init_db(engine)
        with Session(engine) as session:
            user = crud.create_user(
                session=session, user_create=UserCreate(email=email, password=password, is_superuser=admin)
            )
        engine.dispose()
        return {"Authorization": f"Bearer {create_access_token(user, settings)}"}


def wait_until(
    client: httpx.Client, url: str, headers: dict[str, str], predicate: Any, timeout_s: float = 60.0
) -> dict[str, Any]:
    """Poll a JSON document until ``predicate(document)`` holds (a bound, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while True:
        document = client.get(url, headers=headers).json()
        if predicate(document):
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never satisfied the condition; last: {document}")
        time.sleep(0.05)


def read_sse(client: httpx.Client, url: str, headers: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """Every event of an SSE stream, until the server ends it."""
    import json

    events: list[tuple[str, dict[str, Any]]] = []
    kind = "message"
    with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(120.0)) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1].strip())))
    return events
