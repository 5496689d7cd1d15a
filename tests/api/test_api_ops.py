"""Estimate, health, metrics, and the database and checkpoint configuration."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from imageforge.api.core.checkpoints import checkpoint_serializer, open_checkpointer
from imageforge.api.core.config import Settings
from imageforge.api.core.db import DatabaseProbe, autocommit_reads, create_db_engine, sqlalchemy_url
from imageforge.api.core.metrics import percentile
from imageforge.api.main import create_app
from imageforge.api.services.estimate import EstimateQuery, estimate
from imageforge.graph.checkpoint import state_types
from imageforge.traces.schemas import SceneResult
from tests.api.support import FakePipeline, add_user, make_settings, wait_for_status


def test_estimate_reproduces_seed_004_with_hosted_backends(tmp_path) -> None:
    settings = make_settings(tmp_path)
    for scenes, cost in ((4, 0.40), (6, 0.60), (8, 0.80)):
        result = estimate(EstimateQuery(num_scenes=scenes, generator="openai", llm="openai"), settings)
        assert result.images == scenes * 4
        assert abs(result.cost_usd - cost) < 1e-9
        assert result.time_s_low == 60 * scenes and result.time_s_high == 90 * scenes  # ~60-90 s per scene
        assert result.images_max == scenes * 4 * 3 and result.cost_usd_max > result.cost_usd


def test_estimate_scales_with_settings_and_backends(tmp_path) -> None:
    settings = make_settings(tmp_path)
    base = estimate(EstimateQuery(num_scenes=4, generator="openai", llm="openai"), settings)
    fewer = estimate(
        EstimateQuery(
            num_scenes=4,
            num_variations=2,
            max_enhancement_iterations=2,
            generator="openai",
            llm="openai",
        ),
        settings,
    )
    assert fewer.cost_usd < base.cost_usd and fewer.time_s_low < base.time_s_low and fewer.images == 8
    offline = estimate(EstimateQuery(num_scenes=4), settings)  # auto, nothing configured: sketch + heuristic
    assert (offline.generator, offline.llm, offline.cost_usd) == ("sketch", "heuristic", 0.0)
    priced = make_settings(tmp_path, image_price_usd={"openai": 0.04, "sketch": 0.0, "diffusers": 0.0})
    assert estimate(EstimateQuery(num_scenes=1, generator="openai", llm="heuristic"), priced).cost_usd == 0.16


def test_estimate_endpoint_validates_its_query(client: TestClient) -> None:
    response = client.get("/api/estimate", params={"target_duration": 15, "generator": "openai", "llm": "openai"})
    assert response.status_code == 200
    assert response.json()["scenes"] == 4 and abs(response.json()["cost_usd"] - 0.40) < 1e-9
    for params, field in (
        ({"num_variations": 0}, "num_variations"),
        ({"generator": "dalle"}, "generator"),
        ({"bogus": 1}, "bogus"),
    ):
        bad = client.get("/api/estimate", params=params)
        assert bad.status_code == 422 and field in bad.text


def test_health_reports_workers_queue_and_backends(client: TestClient, alice: dict[str, str]) -> None:
    anonymous = client.get("/health")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "healthy"}  # the status alone
    body = client.get("/health", headers=alice).json()
    assert body["status"] == "healthy", body
    assert body["database"] == "ok" and body["workers"] == 2 and body["queue_depth"] == 0
    assert "configured" not in body["backends"] and "loaded_models" not in body  # deployment details: admins
    admin = client.get("/health", headers=add_user(client, "root@example.com", admin=True)).json()
    assert admin["backends"]["configured"]["generator"]["backend"] == "auto"
    assert isinstance(admin["loaded_models"], list) and admin["dev_mode"] is False


async def test_the_database_probe_says_whether_and_how_recently_the_database_answered(tmp_path) -> None:
    now = [100.0]
    probe = DatabaseProbe(create_engine(f"sqlite:///{tmp_path / 'ok.db'}"), stale_after_s=3.0, clock=lambda: now[0])
    assert not probe.reachable  # never asked
    assert await probe.probe() and probe.reachable
    now[0] += 3.0  # no answer since: a probe hanging on a database cut off without a reset
    assert not probe.reachable
    assert await probe.probe() and probe.reachable
    probe.engine = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")
    assert not await probe.probe() and not probe.reachable


def test_health_answers_503_while_the_database_does_not(client: TestClient, alice: dict[str, str], tmp_path) -> None:
    """/health reads the background probe's answer (no query per poll); ``deep=1`` asks afresh."""
    assert client.get("/health", headers=alice).json()["database"] == "ok"
    probe: DatabaseProbe = client.app.state.database  # type: ignore[attr-defined]
    engine = probe.engine
    probe.engine = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")
    asyncio.run(probe.probe())
    response = client.get("/health")
    assert response.status_code == 503 and response.json() == {"status": "unhealthy"}
    assert client.get("/health", headers=alice).json()["database"] == "unreachable"
    probe.engine = engine
    admin = add_user(client, "root@example.com", admin=True)
    deep = client.get("/health", params={"deep": 1}, headers=admin)  # probes now: healthy again at once
    assert deep.status_code == 200 and deep.json()["database"] == "ok"
    assert client.get("/health").status_code == 200


def test_metrics_count_generations_and_expose_the_slo(client: TestClient, alice: dict[str, str]) -> None:
    generation_id = client.post(
        "/api/generate", json={"prompt": "a red bicycle", "num_scenes": 2}, headers=alice
    ).json()["generation_id"]
    wait_for_status(client, generation_id, alice, {"completed"})
    text = client.get("/metrics").text
    assert 'imageforge_generations{status="completed"} 1.0' in text
    assert 'imageforge_step_duration_seconds_count{step="generate"} 2.0' in text
    assert 'imageforge_generator_duration_seconds_count{backend="fake"} 2.0' in text
    assert "imageforge_scorer_duration_seconds_count" in text
    assert "imageforge_cache_hit_rate 0.0" in text
    assert "imageforge_slo_p95_target_seconds 30.0" in text
    assert "imageforge_slo_met 1.0" in text
    assert "imageforge_queue_depth 0.0" in text
    assert "imageforge_generation_duration_seconds_count" in text


def test_percentile_interpolates_like_statistics_quantiles() -> None:
    assert percentile([], 95) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile(range(1, 101), 95) == pytest.approx(95.05)  # between the 95th and 96th values
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile([1, 2], 0) == 1 and percentile([1, 2], 100) == 2
    with pytest.raises(ValueError, match="q"):
        percentile([1, 2], 95.5)


def test_postgres_without_the_extra_fails_with_a_clear_message(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sqlalchemy_url("postgresql://u:p@db:5432/imageforge") == "postgresql+psycopg://u:p@db:5432/imageforge"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"
    settings = make_settings(tmp_path, database_url="postgresql://u:p@127.0.0.1:1/imageforge")
    # The extra is installed here (the PostgreSQL tier uses it), so hide it: a ``None`` entry in
    # sys.modules makes ``import psycopg`` raise ImportError, as on a machine without the extra.
    for name in ("psycopg", "langgraph.checkpoint.postgres", "langgraph.checkpoint.postgres.aio"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(RuntimeError, match=r"psycopg is not installed.*imageforge\[postgres\]"):
        create_db_engine(settings)

    async def open_it() -> None:
        async with open_checkpointer(settings):
            pass

    with pytest.raises(RuntimeError, match=r"postgres extra for checkpoints.*imageforge\[postgres\]"):
        asyncio.run(open_it())


def test_postgres_with_the_extra_builds_a_psycopg_engine_without_connecting(tmp_path) -> None:
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    engine = create_db_engine(make_settings(tmp_path, database_url="postgresql://u:p@127.0.0.1:1/imageforge"))
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        assert engine.url.host == "127.0.0.1" and engine.url.database == "imageforge"
    finally:
        engine.dispose()


def test_checkpoints_deserialise_only_the_projects_state_types() -> None:
    allowed = state_types()
    for name in (
        ("imageforge.traces.schemas", "SceneResult"),
        ("imageforge.graph.state", "SceneInput"),
        ("imageforge.agents.schemas", "StoryboardPlan"),
    ):
        assert name in allowed
    serde = checkpoint_serializer()
    result = SceneResult.model_validate(
        {
            "scene_number": 1,
            "status": "passed",
            "enhanced_prompt": "p",
            "attempts": [],
            "ensemble": {"scorers": [], "effective_weights": {}},
        }
    )
    assert serde.loads_typed(serde.dumps_typed(result)) == result


def test_the_service_freezes_its_start_up_heap(settings: Settings, pipeline: FakePipeline) -> None:
    """A full collection walked every object the imports and models made (200-400 ms with the
    GIL held, every ~10 s under load: the status p99); start-up freezes them out of its view."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 10_000  # the libraries and the app, not a handful


def test_sqlite_keeps_its_engine_for_the_per_request_lookups(tmp_path) -> None:
    """No round trip to save on SQLite, and switching a connection to autocommit cost more
    than it saved there (api.core.db.autocommit_reads)."""
    engine = create_db_engine(make_settings(tmp_path))
    try:
        assert autocommit_reads(engine) is engine
    finally:
        engine.dispose()
