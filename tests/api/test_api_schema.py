"""Property-based run against the app's OpenAPI schema: no generated input gets a 5xx, and
responses match their documented schemas; with NaN, Infinity and lone surrogates planted in
every JSON body, the answer is a 4xx (issue 10, finding 5)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
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


# What JSON itself forbids but Python's parser accepts (issue 10, finding 5): NaN, Infinity and lone
# UTF-16 surrogates, planted at a drawn place of every generated JSON body. schemathesis draws
# only valid JSON from the schema, so the edge cases are added here; every one must be refused
# with a 4xx that still matches the documented error schema, never a 5xx.
EDGE_VALUES = [float("nan"), float("inf"), float("-inf"), "\ud800", "a\udfffb", "\udbff\u0000"]


def _places(value: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a JSON document a value can be put: the leaves and the containers."""
    places = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            places += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            places += _places(item, (*path, index))
    return places


def _planted(body: object, path: tuple[str | int, ...], edge: object) -> object:
    if not path:
        return edge
    head, *rest = path
    if isinstance(body, dict):
        return {**body, head: _planted(body[head], tuple(rest), edge)}
    assert isinstance(body, list) and isinstance(head, int)
    return [_planted(item, tuple(rest), edge) if i == head else item for i, item in enumerate(body)]


@schema.parametrize()
@schema.given(data=st.data())
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_nan_infinity_and_lone_surrogates_are_refused_not_a_server_error(
    case: schemathesis.Case, data: st.DataObject
) -> None:
    if case.media_type != "application/json" or not isinstance(case.body, dict | list):
        case.call()  # the operation takes no JSON body: nothing to plant the values in
        return
    edge = data.draw(st.sampled_from(EDGE_VALUES), label="edge value")
    place = data.draw(st.sampled_from(_places(case.body)), label="place")
    planted = _planted(case.body, place, edge)  # beside the case: schemathesis re-checks the case's own body
    case.headers = {**(case.headers or {}), "Content-Type": "application/json"}
    # Sent as written (NaN, Infinity, "\\ud800" escapes): requests' own JSON encoder refuses NaN.
    response = case.call(json=None, data=json.dumps(planted).encode("ascii"))
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    assert 400 <= response.status_code < 500, (place, repr(edge), response.status_code, response.text)
    json.loads(response.text, parse_constant=lambda name: pytest.fail(f"the answer holds {name}"))
