"""Fixtures of the API tests (helpers live in support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imageforge.api.core import security
from imageforge.api.core.config import Settings
from imageforge.api.main import create_app
from tests.api.support import CHEAP_PASSWORD_HASH, FakePipeline, add_user, make_settings


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every API test creates users; hashing at full cost made the fast loop ~15 s slower.
    test_api_auth.py's default-profile test puts support.DEFAULT_PASSWORD_HASH back for itself."""
    monkeypatch.setattr(security, "_password_hash", CHEAP_PASSWORD_HASH)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def pipeline(settings: Settings) -> FakePipeline:
    return FakePipeline(settings.trace_root)


@pytest.fixture
def client(settings: Settings, pipeline: FakePipeline) -> Iterator[TestClient]:
    with TestClient(create_app(settings, pipeline=pipeline)) as test_client:
        yield test_client


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    return add_user(client, "alice@example.com")


@pytest.fixture
def bob(client: TestClient) -> dict[str, str]:
    return add_user(client, "bob@example.com")
