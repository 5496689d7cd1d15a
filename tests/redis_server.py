"""A real ``redis-server`` on a free port, a fresh PostgreSQL database and ``imageforge worker``
processes, for the tests and benchmarks of distributed execution (API and Celery workers as
separate processes; the API is tests/api/server.py's ``Server``).

Both skip with a reason where the service is missing: ``redis-server`` is not installed, or
IMAGEFORGE_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from tests.api.server import Server

__all__ = ["POSTGRES_URL", "Worker", "fresh_postgres_database", "redis_server", "skip_reason"]

POSTGRES_URL = os.environ.get("IMAGEFORGE_TEST_POSTGRES_URL")


def skip_reason() -> str | None:
    """Why the distributed tests cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (.ci/run installs it with apt)"
    if not POSTGRES_URL:
        return "IMAGEFORGE_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)"
    try:
        import celery  # noqa: F401
        import psycopg  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"a package of distributed mode is missing: {exc.name}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A throwaway Redis (no persistence) on a free port; yields its URL."""
    import redis

    port = _free_port()
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {(folder / 'redis.log').read_text()}") from None
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
        log.close()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new database on the test server (the test user may create databases), dropped after;
    so leftover jobs of other tests never reach these workers' reaper."""
    import psycopg

    assert POSTGRES_URL
    name = f"imageforge_dist_{uuid.uuid4().hex[:10]}"
    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Worker:
    """An ``imageforge worker`` process with the API server's environment."""

    server: Server
    name: str
    concurrency: int = 1
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    #: Runs the worker under another command (the benchmark's `taskset -c 1 nice -n 10`).
    prefix: list[str] = field(default_factory=list)

    def start(self) -> Worker:
        log = (self.server.root / f"worker-{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-c",
                "from imageforge.api.cli import app; app()",
                "worker",
                f"--concurrency={self.concurrency}",
                f"--name={self.name}",
                "--log-level=info",
            ],
            cwd=self.server.root,
            env={**self.server.environment(), **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, broker_url: str, timeout_s: float = 60.0) -> None:
        import redis

        client = redis.Redis.from_url(broker_url)
        deadline = time.monotonic() + timeout_s
        try:
            while not client.exists(f"imageforge:worker:{self.name}"):
                assert self.process is not None
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {self.name} did not start:\n{self.log()}")
                time.sleep(0.1)
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def log(self) -> str:
        path = self.server.root / f"worker-{self.name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
