"""The OpenAI-compatible images endpoints.

Two tiers: the official ``openai`` client against a live uvicorn server with offline backends
(the contract as users meet it), and a TestClient with the scripted pipeline for the mapping,
validation details, the queue, timeouts and failures.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI
from PIL import Image
from sqlmodel import Session, select

from imageforge.api.core.config import OpenAIImagesSettings, Settings
from imageforge.api.main import create_app
from imageforge.api.models.generation import Generation, Variation
from imageforge.api.services.openai_compat import (
    PROMPT_MAX_LENGTH,
    STYLE_PHRASES,
    ImageGenerationRequest,
    best_variations,
    frame_for,
    generation_create,
    variation_count,
)
from imageforge.tools.sizes import size_for
from imageforge.traces import layout
from tests.api.server import SLOW_GENERATOR_ENV, Server, wait_until
from tests.api.support import FakePipeline, add_user, make_settings, wait_for_status

#: Small frames keep the live runs around a second: sizes map to presets at this long edge.
CAP = 96


def png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG"), data[:16]
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def reference_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


# Live server, official client ----------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    server = Server(
        tmp_path_factory.mktemp("openai-images"),
        {
            "IMAGEFORGE_OPENAI_IMAGES__MAX_RESOLUTION": str(CAP),
            "IMAGEFORGE_OPENAI_IMAGES__TIMEOUT_S": "120",
        },
    )
    server.start()
    try:
        yield server, server.add_user("client@example.com")
    finally:
        server.stop()


def client_for(server: Server, headers: dict[str, str]) -> OpenAI:
    token = headers["Authorization"].removeprefix("Bearer ")
    return OpenAI(base_url=f"{server.base_url}/v1", api_key=token, max_retries=0, timeout=120)


@pytest.mark.integration
def test_generate_returns_the_n_best_variations_as_pngs(
    live: tuple[Server, dict[str, str]],
) -> None:
    server, headers = live
    result = client_for(server, headers).images.generate(
        model="dall-e-3",
        prompt="a lighthouse on a cliff at dusk",
        n=2,
        size="1792x1024",
        response_format="b64_json",
    )
    assert len(result.data) == 2
    images = [png(base64.b64decode(item.b64_json or "")) for item in result.data]
    expected = size_for("16:9", CAP)
    assert [image.size for image in images] == [(expected.width, expected.height)] * 2
    assert images[0].tobytes() != images[1].tobytes()
    assert result.data[0].revised_prompt and result.data[0].revised_prompt != "a lighthouse on a cliff at dusk"
    assert "lighthouse" in result.data[0].revised_prompt.lower()

    # The generation is the caller's: in their history, with four variations scored, and the
    # two returned are that attempt's ranks 1 and 2.
    generation_id = (result.model_extra or {})["generation_id"]
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        history = http.get("/api/generations").json()
        assert generation_id in [item["id"] for item in history["data"]]
        document = http.get(f"/api/generations/{generation_id}").json()
        assert document["status"] == "completed"
        assert document["storyboard_plan"]["settings"]["num_variations"] == 4
        (scene,) = document["storyboard_plan"]["scenes"]
        assert scene["enhanced_prompt"] == result.data[0].revised_prompt
        winner = next(a for a in scene["attempts"] if a["variations"] and any(v["rank"] == 1 for v in a["variations"]))
        ranked = sorted(winner["variations"], key=lambda v: v["rank"])
        for item, variation in zip(result.data, ranked[:2], strict=True):
            assert http.get(variation["image_url"]).content == base64.b64decode(item.b64_json or "")
        assert http.get(f"/traces/{generation_id}").status_code == 200


@pytest.mark.integration
def test_url_format_links_to_images_the_key_can_fetch(live: tuple[Server, dict[str, str]]) -> None:
    server, headers = live
    result = client_for(server, headers).images.generate(
        prompt="a red bicycle", response_format="url", size="1024x1024"
    )
    (item,) = result.data
    assert item.url and item.url.startswith(f"{server.base_url}/api/generations/")
    with httpx.Client(timeout=30) as http:
        fetched = http.get(item.url, headers=headers)
        assert fetched.status_code == 200
        assert png(fetched.content).size == (CAP, CAP)
        assert http.get(item.url).status_code == 401
        stranger = server.add_user("stranger@example.com")
        assert http.get(item.url, headers=stranger).status_code == 404


@pytest.mark.integration
def test_edit_uses_the_uploaded_image_as_scene_one_reference(
    live: tuple[Server, dict[str, str]],
) -> None:
    server, headers = live
    result = client_for(server, headers).images.edit(
        image=("reference.png", reference_png(), "image/png"),
        mask=("mask.png", reference_png(), "image/png"),
        prompt="the same product on a marble counter",
        n=1,
        size="1024x1536",
        response_format="b64_json",
    )
    (item,) = result.data
    expected = size_for("4:5", CAP)
    assert png(base64.b64decode(item.b64_json or "")).size == (expected.width, expected.height)
    generation_id = (result.model_extra or {})["generation_id"]
    document = httpx.get(f"{server.base_url}/api/generations/{generation_id}", headers=headers, timeout=30).json()
    (scene,) = document["storyboard_plan"]["scenes"]
    assert scene["attempts"][0]["reference_kind"] == "user"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"n": 0}, "n"),
        ({"size": "banana"}, "size"),
        ({"response_format": "gif"}, "response_format"),
    ],
)
def test_client_raises_bad_request_naming_the_field(
    live: tuple[Server, dict[str, str]], arguments: dict[str, Any], param: str
) -> None:
    server, headers = live
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(server, headers).images.generate(prompt="a cat", **arguments)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


@pytest.mark.integration
def test_client_raises_authentication_error_for_a_bad_key(
    live: tuple[Server, dict[str, str]],
) -> None:
    server, _ = live
    bad = OpenAI(base_url=f"{server.base_url}/v1", api_key="not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.images.generate(prompt="a cat")
    assert caught.value.code == "invalid_api_key"


@pytest.mark.integration
def test_a_client_that_gives_up_cancels_its_generation(tmp_path: Path) -> None:
    # The generator sleeps 2 s per call, so the run is still going when the client leaves.
    server = Server(
        tmp_path,
        {
            **SLOW_GENERATOR_ENV,
            "SLOW_GENERATOR_DELAY_S": "2",
            "IMAGEFORGE_OPENAI_IMAGES__MAX_RESOLUTION": str(CAP),
        },
    )
    server.start()
    try:
        headers = server.add_user("impatient@example.com")
        with pytest.raises(openai.APITimeoutError):
            client_for(server, headers).with_options(timeout=0.5).images.generate(prompt="a cat")
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            history = wait_until(
                http,
                "/api/generations",
                headers,
                lambda d: d["count"] == 1 and d["data"][0]["status"] in ("completed", "failed", "cancelled"),
            )
        assert history["data"][0]["status"] == "cancelled"
    finally:
        server.stop()


# TestClient tier: mapping and validation details ----------------------------------------------
@pytest.fixture
def images() -> OpenAIImagesSettings:
    return OpenAIImagesSettings(max_resolution=CAP, timeout_s=30)


@pytest.fixture
def app_client(settings: Settings, pipeline: FakePipeline, images: OpenAIImagesSettings) -> Iterator[TestClient]:
    app = create_app(settings, pipeline=pipeline)
    app.state.openai_images_settings = images
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def carol(app_client: TestClient) -> dict[str, str]:
    return add_user(app_client, "carol@example.com")


def stored(client: TestClient) -> list[Generation]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return list(session.exec(select(Generation)).all())


@pytest.mark.parametrize(
    ("size", "aspect_ratio", "resolution"),
    [
        ("1024x1024", "square", 1024),
        ("256x256", "square", 256),
        ("1792x1024", "16:9", 1792),
        ("1536x1024", "16:9", 1536),
        ("1024x1792", "4:5", 1792),
        ("1024x1536", "4:5", 1536),
        ("2048x878", "21:9", 2048),
        ("auto", "square", 1024),
        (None, "square", 1024),
    ],
)
def test_size_maps_to_the_closest_preset(size: str | None, aspect_ratio: str, resolution: int) -> None:
    assert frame_for(size, 2048) == (aspect_ratio, resolution)
    assert frame_for(size, 512) == (aspect_ratio, min(resolution, 512))


@pytest.mark.parametrize(
    ("quality", "iterations"),
    [("low", 1), ("standard", 2), ("hd", 4), ("max", 8), (None, 4), ("auto", 4)],
)
def test_quality_caps_the_critique_rounds(quality: str | None, iterations: int) -> None:
    body = ImageGenerationRequest(prompt="a cat", quality=quality)  # type: ignore[arg-type]
    create = generation_create(body, num_variations=4, max_resolution=2048)
    assert create.settings.max_enhancement_iterations == iterations
    assert create.scenes == ["a cat"]


def test_style_is_appended_to_the_scene_prompt_only() -> None:
    create = generation_create(
        ImageGenerationRequest(prompt="a cat", style="vivid"), num_variations=4, max_resolution=2048
    )
    assert create.prompt == "a cat"
    assert create.scenes == [f"a cat {STYLE_PHRASES['vivid']}"]


def test_variation_count() -> None:
    assert variation_count(1, None) == 4
    assert variation_count(6, None) == 6
    assert variation_count(2, 3) == 3
    with pytest.raises(ValueError, match="`n` \\(4\\) is more than the 3 variations"):
        variation_count(4, 3)


def test_best_variations_orders_by_rank_then_score() -> None:
    def variation(index: int, rank: int, overall: float) -> Variation:
        return Variation(
            attempt_id=1,
            index=index,
            seed=index,
            path=f"scene_1/image_{index}.png",
            overall=overall,
            rank=rank,
        )

    ranked = [variation(1, 3, 10.0), variation(2, 1, 30.0), variation(3, 2, 20.0)]
    assert [v.index for v in best_variations(ranked, 2)] == [2, 3]
    unranked = [variation(1, 0, 10.0), variation(2, 0, 30.0), variation(3, 0, 20.0)]
    assert [v.index for v in best_variations(unranked, 3)] == [2, 3, 1]


def test_generation_stores_the_mapped_storyboard(app_client: TestClient, carol: dict[str, str]) -> None:
    response = app_client.post(
        "/v1/images/generations",
        json={
            "prompt": "  a cat  ",
            "n": 3,
            "size": "1792x1024",
            "quality": "low",
            "style": "natural",
            "response_format": "b64_json",
        },
        headers=carol,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"created", "data", "generation_id"}
    assert [set(item) for item in body["data"]] == [{"b64_json", "revised_prompt"}] * 3
    assert body["data"][0]["revised_prompt"] == "enhanced scene 1"
    (generation,) = stored(app_client)
    request = generation.request
    assert generation.concept == "a cat"
    assert request["scenes"] == [f"a cat {STYLE_PHRASES['natural']}"]
    assert request["settings"]["num_variations"] == 4
    assert request["settings"]["max_enhancement_iterations"] == 1
    assert (request["settings"]["aspect_ratio"], request["settings"]["resolution"]) == ("16:9", CAP)
    # The scripted pipeline ranks image_4 first, then image_3, image_2.
    trace = layout.generation_dir(app_client.app.state.settings.trace_root, generation.id)  # type: ignore[attr-defined]
    returned = [base64.b64decode(item["b64_json"]) for item in body["data"]]
    assert returned == [(trace / "scene_1" / f"image_{k}.png").read_bytes() for k in (4, 3, 2)]


def test_url_format_is_the_default(app_client: TestClient, carol: dict[str, str]) -> None:
    body = app_client.post("/v1/images/generations", json={"prompt": "a cat"}, headers=carol).json()
    (item,) = body["data"]
    assert item["url"].endswith(f"/api/generations/{body['generation_id']}/images/scene_1/image_4.png")
    assert app_client.get(item["url"], headers=carol).status_code == 200


def test_configured_variations_bound_n(
    app_client: TestClient, carol: dict[str, str], images: OpenAIImagesSettings
) -> None:
    app_client.app.state.openai_images_settings = images.model_copy(update={"variations": 2})  # type: ignore[attr-defined]
    response = app_client.post("/v1/images/generations", json={"prompt": "a cat", "n": 3}, headers=carol)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"
    assert stored(app_client) == []
    ok = app_client.post("/v1/images/generations", json={"prompt": "a cat", "n": 2}, headers=carol)
    assert ok.status_code == 200
    assert stored(app_client)[0].request["settings"]["num_variations"] == 2


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "a cat", "n": 0}, "n", "invalid_value"),
        ({"prompt": "a cat", "n": 11}, "n", "invalid_value"),
        ({"prompt": "a cat", "n": "two"}, "n", "invalid_value"),
        ({"prompt": "a cat", "size": "banana"}, "size", "invalid_value"),
        ({"prompt": "a cat", "size": "10x10"}, "size", "invalid_value"),
        ({"prompt": "a cat", "size": "8000x1024"}, "size", "invalid_value"),
        ({"prompt": "a cat", "response_format": "gif"}, "response_format", "invalid_value"),
        ({"prompt": "a cat", "quality": "ultra"}, "quality", "invalid_value"),
        ({"prompt": "a cat", "style": "moody"}, "style", "invalid_value"),
        ({"prompt": "a cat", "stream": True}, "stream", "invalid_value"),
        ({"prompt": "a cat", "output_format": "jpeg"}, "output_format", "invalid_value"),
        ({"prompt": "a cat", "background": "transparent"}, "background", "unknown_parameter"),
        ({"prompt": "   "}, "prompt", "invalid_value"),
        ({"prompt": "x" * (PROMPT_MAX_LENGTH + 1)}, "prompt", "invalid_value"),
        ({"n": 1}, "prompt", "missing_required_parameter"),
    ],
)
def test_invalid_requests_are_400_naming_the_field(
    app_client: TestClient, carol: dict[str, str], body: dict[str, Any], param: str, code: str
) -> None:
    response = app_client.post("/v1/images/generations", json=body, headers=carol)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert param in error["message"]
    assert stored(app_client) == []


def test_a_body_that_is_not_json_is_400(app_client: TestClient, carol: dict[str, str]) -> None:
    response = app_client.post(
        "/v1/images/generations",
        content=b"{prompt",
        headers={**carol, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    undecodable = app_client.post(
        "/v1/images/generations",
        content=b'{"prompt": "\xff\xfe"}',
        headers={**carol, "Content-Type": "application/json"},
    )
    assert undecodable.status_code == 400
    assert undecodable.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
def test_a_missing_or_bad_key_is_401_in_openai_shape(app_client: TestClient, headers: dict[str, str]) -> None:
    response = app_client.post("/v1/images/generations", json={"prompt": "a cat"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_full_queue_is_429_with_retry_after(tmp_path: Path, images: OpenAIImagesSettings) -> None:
    settings = make_settings(tmp_path, workers=1, queue_size=1, retry_after_s=7)
    pipeline = FakePipeline(settings.trace_root, scenes=1)
    pipeline.hold.clear()
    app = create_app(settings, pipeline=pipeline)
    app.state.openai_images_settings = images
    with TestClient(app) as client:
        headers = add_user(client, "dave@example.com")
        try:
            # one running (held), one waiting: the queue is full. The second is submitted once the
            # worker has taken the first, or it would find the one-slot queue still occupied.
            first = client.post("/api/generate", json={"prompt": "held"}, headers=headers)
            assert first.status_code == 202
            wait_for_status(client, first.json()["generation_id"], headers, {"running"})
            assert client.post("/api/generate", json={"prompt": "held"}, headers=headers).status_code == 202
            response = client.post("/v1/images/generations", json={"prompt": "a cat"}, headers=headers)
            assert response.status_code == 429
            assert response.headers["Retry-After"] == "7"
            assert response.json()["error"]["type"] == "requests"
            assert len(stored(client)) == 2
        finally:
            pipeline.hold.set()


def test_a_request_that_outlives_the_timeout_is_504_and_cancels(tmp_path: Path, images: OpenAIImagesSettings) -> None:
    settings = make_settings(tmp_path)
    pipeline = FakePipeline(settings.trace_root, scenes=1)
    pipeline.hold.clear()
    app = create_app(settings, pipeline=pipeline)
    app.state.openai_images_settings = images.model_copy(update={"timeout_s": 0.3})
    with TestClient(app) as client:
        headers = add_user(client, "erin@example.com")
        try:
            response = client.post("/v1/images/generations", json={"prompt": "a cat"}, headers=headers)
            assert response.status_code == 504
            assert response.headers["x-should-retry"] == "false"
            assert response.json()["error"]["code"] == "timeout"
            (generation,) = stored(client)
            assert generation.cancel_requested or generation.status == "cancelled"
        finally:
            pipeline.hold.set()


class FailingPipeline(FakePipeline):
    async def __call__(self, generation_id: str, spec: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the generator is on fire")


def test_a_failed_generation_is_500_with_the_reason(tmp_path: Path, images: OpenAIImagesSettings) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, pipeline=FailingPipeline(settings.trace_root))
    app.state.openai_images_settings = images
    with TestClient(app) as client:
        headers = add_user(client, "frank@example.com")
        response = client.post("/v1/images/generations", json={"prompt": "a cat"}, headers=headers)
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "generation_failed")
    assert "the generator is on fire" in error["message"]


def test_edit_stores_the_reference_and_ignores_the_mask(app_client: TestClient, carol: dict[str, str]) -> None:
    response = app_client.post(
        "/v1/images/edits",
        data={"prompt": "on a marble counter", "n": "2", "size": "1024x1024"},
        files={
            "image": ("ref.png", reference_png(), "image/png"),
            "mask": ("mask.png", b"not read", "image/png"),
        },
        headers=carol,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    (generation,) = stored(app_client)
    reference = Path(generation.request["reference_path"])
    assert png(reference.read_bytes()).size == (64, 48)


@pytest.mark.parametrize(
    ("data", "files", "param", "code"),
    [
        (
            {"prompt": "x"},
            {"image": ("a.png", b"not an image", "image/png")},
            "image",
            "invalid_image",
        ),
        (
            {"prompt": "x"},
            {"image": ("a.gif", b"GIF89a", "image/gif")},
            "image",
            "unsupported_type",
        ),
        (
            {"prompt": "x"},
            {"mask": ("m.png", b"x", "image/png")},
            "image",
            "missing_required_parameter",
        ),
        (
            {"prompt": "x", "n": "0"},
            {"image": ("a.png", reference_png(), "image/png")},
            "n",
            "invalid_value",
        ),
        (
            {"prompt": "x", "size": "huge"},
            {"image": ("a.png", reference_png(), "image/png")},
            "size",
            "invalid_value",
        ),
        (
            {"prompt": "x", "response_format": "jpg"},
            {"image": ("a.png", reference_png(), "image/png")},
            "response_format",
            "invalid_value",
        ),
    ],
)
def test_invalid_edits_are_400_naming_the_field(
    app_client: TestClient,
    carol: dict[str, str],
    data: dict[str, str],
    files: dict[str, Any],
    param: str,
    code: str,
) -> None:
    response = app_client.post("/v1/images/edits", data=data, files=files, headers=carol)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)
    assert stored(app_client) == []
