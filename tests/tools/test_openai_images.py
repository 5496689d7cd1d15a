"""The OpenAI Images backend against a scripted Images API on 127.0.0.1 (no network)."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from PIL import Image
from tenacity import wait_exponential

from imageforge.tools.base import GenerationError, ImageGenerator
from imageforge.tools.generation_cache import GenerationCache
from imageforge.tools.openai_images import (
    ModelLimits,
    OpenAIImageGenerator,
    api_size_for,
    is_transient,
    load_openai_generator,
    model_limits,
    retry_after_s,
    wait_retry_after,
)
from imageforge.tools.schemas import ImageSize

SQUARE = ImageSize(width=512, height=512)
WIDE = ImageSize(width=512, height=288)


def _png_b64(width: int, height: int, shade: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 255 - shade, 90)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _multipart_fields(content_type: str, body: bytes) -> dict[str, list[bytes]]:
    message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, list[bytes]] = {}
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        fields.setdefault(name, []).append(part.get_payload(decode=True))
    return fields


class FakeImagesAPI:
    """Answers /v1/images/generations and /v1/images/edits; ``script`` holds the next answers
    (status, headers, body) or ("sleep", seconds) before a normal answer."""

    def __init__(self) -> None:
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                content_type = self.headers.get("content-type", "")
                if content_type.startswith("multipart/"):
                    fields = _multipart_fields(content_type, body)
                    params = {k: v[0].decode() for k, v in fields.items() if not k.startswith("image")}
                    images = sum(len(v) for k, v in fields.items() if k.startswith("image"))
                else:
                    params, images = json.loads(body), 0
                with api._lock:
                    api.requests.append({"path": self.path, "params": params, "images": images})
                    step = api.script.pop(0) if api.script else None
                if step is not None and step[0] == "sleep":
                    time.sleep(step[1])
                    step = None
                if step is None:
                    n = int(params.get("n", 1))
                    width, height = (int(v) for v in params.get("size", "1024x1024").split("x"))
                    data = [
                        {
                            "b64_json": _png_b64(width, height, 40 * i),
                            "revised_prompt": f"revised {i}",
                        }
                        for i in range(n)
                    ]
                    step = (200, {}, {"created": 0, "data": data})
                status, headers, payload = step
                encoded = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(encoded)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(encoded)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def error(self, status: int, message: str, headers: dict | None = None, code: str | None = None):
        self.script.append((status, headers or {}, {"error": {"message": message, "type": "test", "code": code}}))


@pytest.fixture
def api():
    fake = FakeImagesAPI()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _generator(
    api: FakeImagesAPI, model: str, *, timeout_s: float = 5.0, **kwargs
) -> tuple[OpenAIImageGenerator, list]:
    sleeps: list[float] = []
    generator = load_openai_generator(
        model,
        api_key="test-key",
        base_url=api.url,
        timeout_s=timeout_s,
        max_attempts=kwargs.pop("max_attempts", 5),
        # No jitter, so that the delays are exact: 1 s * 2**(attempt-1), at most 30 s.
        wait=kwargs.pop("wait", wait_retry_after(wait_exponential(multiplier=1, max=30), max_s=30)),
        **kwargs,
    )
    generator.sleep = sleeps.append
    return generator, sleeps


def _generate(generator, seeds, *, references=(), negative="", size=SQUARE):
    return generator.generate(
        "a lighthouse at dusk",
        negative_prompt=negative,
        seeds=list(seeds),
        references=list(references),
        size=size,
    )


def test_gpt_image_makes_all_variations_in_one_request(api):
    generator, sleeps = _generator(api, "gpt-image-1")
    assert isinstance(generator, ImageGenerator)
    assert generator.client.max_retries == 0
    output = _generate(generator, [4, 5, 6])
    [request] = api.requests
    assert request["path"] == "/v1/images/generations"
    assert (request["params"]["n"], request["params"]["size"]) == (3, "1024x1024")
    assert "response_format" not in request["params"]
    assert [image.seed for image in output.images] == [4, 5, 6]
    assert all(image.image.size == (512, 512) for image in output.images)
    meta = output.images[1].metadata
    assert (meta["seed"], meta["seed_applied"], meta["api_size"], meta["attempts"]) == (
        5,
        False,
        "1024x1024",
        1,
    )
    assert "no seed" in meta["seed_note"]
    assert meta["revised_prompt"] == "revised 1"
    assert (output.backend, output.model, output.warnings, sleeps) == (
        "openai",
        "gpt-image-1",
        [],
        [],
    )


def test_dall_e_3_makes_one_request_per_variation(api):
    generator, _ = _generator(api, "dall-e-3")
    output = _generate(generator, [1, 2, 3], size=WIDE)
    assert len(api.requests) == 3
    for request in api.requests:
        assert request["params"]["n"] == 1
        assert request["params"]["response_format"] == "b64_json"
        assert request["params"]["size"] == "1792x1024"
    assert all(image.image.size == (512, 288) for image in output.images)
    assert sorted(image.metadata["request_index"] for image in output.images) == [0, 1, 2]


def test_gpt_image_sends_references_to_the_edit_endpoint(api):
    generator, _ = _generator(api, "gpt-image-1")
    references = [Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")]
    output = _generate(generator, [1, 2], references=references)
    [request] = api.requests
    assert request["path"] == "/v1/images/edits"
    assert request["images"] == 2
    assert request["params"]["n"] == "2"
    assert output.images[0].metadata["endpoint"] == "edits"
    assert output.images[0].metadata["references_used"] == 2


def test_dall_e_3_ignores_references_with_a_warning(api):
    generator, _ = _generator(api, "dall-e-3")
    output = _generate(generator, [1], references=[Image.new("RGB", (64, 64), "red")])
    assert api.requests[0]["path"] == "/v1/images/generations"
    assert any("References ignored" in warning for warning in output.warnings)


def test_negative_prompt_is_appended(api):
    generator, _ = _generator(api, "gpt-image-1")
    _generate(generator, [1], negative="text, watermark")
    assert api.requests[0]["params"]["prompt"] == "a lighthouse at dusk\n\nAvoid: text, watermark"


def test_429_retry_after_and_5xx_backoff_then_success(api):
    generator, sleeps = _generator(api, "gpt-image-1")
    api.error(429, "Rate limit reached", headers={"retry-after": "7"})
    api.error(500, "The server had an error")
    api.error(502, "Bad gateway")
    output = _generate(generator, [1, 2])
    # Retry-After wins over the computed delay; then 1 s * 2**(attempt-1).
    assert sleeps == [7.0, 2.0, 4.0]
    assert len(api.requests) == 4
    assert len(output.warnings) == 3
    assert "HTTP 429: Rate limit reached" in output.warnings[0] and "Retry-After 7s" in output.warnings[0]
    assert "HTTP 500" in output.warnings[1] and "backoff" in output.warnings[1]
    assert output.images[0].metadata["attempts"] == 4


def test_retry_after_is_capped(api):
    generator, sleeps = _generator(api, "gpt-image-1")
    api.error(429, "Slow down", headers={"retry-after-ms": "3600000"})
    _generate(generator, [1])
    assert sleeps == [30.0]


def test_persistent_failure_is_a_clear_generation_error(api):
    generator, sleeps = _generator(api, "gpt-image-1")
    for _ in range(5):
        api.error(503, "Service unavailable, try later")
    with pytest.raises(GenerationError, match=r"failed after 5 attempts; last error HTTP 503: Service unavailable"):
        _generate(generator, [1])
    assert len(api.requests) == 5
    assert sleeps == [1.0, 2.0, 4.0, 8.0]


def test_client_errors_and_quota_are_not_retried(api):
    generator, sleeps = _generator(api, "gpt-image-1")
    api.error(400, "Your request was rejected by the safety system.")
    with pytest.raises(GenerationError, match="refused the request with HTTP 400: Your request was rejected"):
        _generate(generator, [1])
    api.error(429, "You exceeded your current quota.", code="insufficient_quota")
    with pytest.raises(GenerationError, match="HTTP 429: You exceeded your current quota"):
        _generate(generator, [1])
    assert len(api.requests) == 2
    assert sleeps == []


def test_timeouts_are_retried(api):
    generator, sleeps = _generator(api, "gpt-image-1", timeout_s=0.3)
    api.script.append(("sleep", 1.5))
    output = _generate(generator, [1])
    assert sleeps == [1.0]
    assert "timed out" in output.warnings[0]
    assert output.images[0].metadata["attempts"] == 2


def test_cache_hits_skip_requests(api, tmp_path):
    generator, _ = _generator(api, "dall-e-3", cache=GenerationCache(tmp_path))
    first = _generate(generator, [1, 2])
    second = _generate(generator, [2, 1, 3])
    assert (first.cache_hits, second.cache_hits) == (0, 2)
    assert len(api.requests) == 3
    assert [image.metadata["cache_hit"] for image in second.images] == [True, True, False]


def test_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="needs an API key"):
        load_openai_generator("gpt-image-1")


def test_sizes_map_to_what_each_model_accepts():
    gpt, dalle3 = model_limits("gpt-image-1"), model_limits("dall-e-3")
    assert api_size_for(SQUARE, gpt) == "1024x1024"
    assert api_size_for(WIDE, gpt) == "1536x1024"
    assert api_size_for(ImageSize(width=410, height=512), gpt) == "1024x1536"
    assert api_size_for(ImageSize(width=512, height=220), dalle3) == "1792x1024"
    assert api_size_for(ImageSize(width=400, height=500), dalle3) == "1024x1024"
    assert api_size_for(ImageSize(width=400, height=700), dalle3) == "1024x1792"
    other = model_limits("my-local-model")
    assert isinstance(other, ModelLimits) and other.max_n == 1
    assert api_size_for(WIDE, other) == "512x288"
    assert (gpt.max_n, gpt.edits, dalle3.max_n, dalle3.edits) == (10, True, 1, False)


def test_retry_after_as_an_http_date_is_honoured_and_recorded(api):
    generator, sleeps = _generator(api, "dall-e-3")
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    api.error(503, "Overloaded", headers={"retry-after": when})
    output = _generate(generator, [1])
    [delay] = sleeps
    assert 18 <= delay <= 20
    [warning] = output.warnings
    assert warning.startswith("OpenAI Images attempt 1 HTTP 503: Overloaded; retrying in ")
    assert "(Retry-After " in warning
    assert output.images[0].metadata["attempts"] == 2


def test_a_quota_429_is_not_retried_but_a_rate_limit_429_is(api):
    generator, sleeps = _generator(api, "gpt-image-1")
    api.error(429, "You exceeded your current quota.", headers={"retry-after": "1"}, code="insufficient_quota")
    with pytest.raises(GenerationError, match="refused the request with HTTP 429: You exceeded"):
        _generate(generator, [1])
    assert (len(api.requests), sleeps) == (1, [])
    api.error(429, "Rate limit reached", headers={"retry-after": "1"}, code="rate_limit_exceeded")
    output = _generate(generator, [1])
    assert (len(api.requests), sleeps) == (3, [1.0])
    assert "HTTP 429: Rate limit reached" in output.warnings[0]


def test_attempts_are_bounded_by_max_attempts(api):
    generator, sleeps = _generator(api, "gpt-image-1", max_attempts=2)
    api.error(500, "boom")
    api.error(500, "boom again")
    with pytest.raises(GenerationError, match="failed after 2 attempts; last error HTTP 500: boom again"):
        _generate(generator, [1])
    assert (len(api.requests), sleeps) == (2, [1.0])
    with pytest.raises(ValueError, match="max_attempts"):
        OpenAIImageGenerator(generator.client, max_attempts=0)


def test_the_default_wait_is_jittered_exponential_backoff(api):
    generator = load_openai_generator("gpt-image-1", api_key="test-key", base_url=api.url, timeout_s=5.0)
    sleeps: list[float] = []
    generator.sleep = sleeps.append
    api.error(500, "one")
    api.error(500, "two")
    _generate(generator, [1])
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 3.0


def _api_error(api: FakeImagesAPI, *step, timeout_s: float = 5.0, base_url: str | None = None) -> openai.APIError:
    """The error the real SDK raises for one scripted answer of the fake API."""
    if step:
        api.script.append(step)
    client = openai.OpenAI(api_key="k", base_url=base_url or api.url, max_retries=0, timeout=timeout_s)
    with pytest.raises(openai.APIError) as info:
        client.images.generate(model="gpt-image-1", prompt="p")
    return info.value


def _status(status: int, headers: dict | None = None, code: str | None = None) -> tuple:
    return (status, headers or {}, {"error": {"message": "x", "type": "test", "code": code}})


def test_which_errors_are_transient(api):
    for status in (408, 409, 429, 500, 502, 503):
        assert is_transient(_api_error(api, *_status(status))), status
    for status in (400, 401, 403, 404, 422):
        assert not is_transient(_api_error(api, *_status(status))), status
    assert not is_transient(_api_error(api, *_status(429, code="insufficient_quota")))
    assert is_transient(_api_error(api, "sleep", 1.0, timeout_s=0.2))  # APITimeoutError
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    refused = _api_error(api, base_url=closed)
    assert isinstance(refused, openai.APIConnectionError) and is_transient(refused)
    assert not is_transient(ValueError("not an API error"))


def test_retry_after_headers(api):
    assert retry_after_s(_api_error(api, *_status(429, {"retry-after-ms": "1500", "retry-after": "9"}))) == 1.5
    assert retry_after_s(_api_error(api, *_status(429, {"retry-after": "7"}))) == 7.0
    assert retry_after_s(_api_error(api, *_status(429, {"retry-after": "-3"}))) == 0.0
    assert retry_after_s(_api_error(api, *_status(429, {"retry-after": "soon"}))) is None
    assert retry_after_s(_api_error(api, *_status(500))) is None
    assert retry_after_s(None) is None
