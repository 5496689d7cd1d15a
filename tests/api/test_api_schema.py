"""Property-based run against the app's OpenAPI schema: no generated input gets a 5xx, and
responses match their documented schemas."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from imageforge.api.main import create_app
from tests.api.support import FakePipeline, make_settings

# The schema must exist when tests are collected, so the app is built at import; it starts
# (lifespan, database, workers) only when the first generated request reaches it.
_ROOT = Path(tempfile.mkdtemp(prefix="imageforge-schemathesis-"))
# Dev mode lets generated requests reach validation instead of stopping at 401 (authentication
# has its own tests); a small queue makes 429 part of the run.
_SETTINGS = make_settings(_ROOT, dev_mode=True, workers=1, queue_size=5)
_APP = create_app(_SETTINGS, pipeline=FakePipeline(_SETTINGS.trace_root, scenes=1, variations=1))

schema = schemathesis.openapi.from_dict(_APP.openapi())
schema.app = _APP


@pytest.fixture(scope="module", autouse=True)
def _remove_the_data_folder() -> Iterator[None]:
    yield
    shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
