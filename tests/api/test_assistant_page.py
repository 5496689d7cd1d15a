"""The assistant page (/assistant) over HTTP: the page and its static files are served with no
inline code (a strict CSP holds), it signs in like the trace viewer, the page's cookie
authorises a change only from the page's own origin, the storyboard cards show each scene's
winner, score, attempts and trace link (and which scenes a refinement kept), and Cancel works
from the page. The browser tier is test_assistant_page_browser.py."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from fakes import ScriptedChatModel, tool_call_message
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage

from imageforge.api.deps import SESSION_COOKIE
from imageforge.api.main import create_app
from imageforge.api.models.generation import JobSpec
from imageforge.traces.schemas import RunSummary
from tests.api.support import FakePipeline, add_user, make_settings, wait_for_status

ORIGIN = "http://testserver"
SAME_ORIGIN = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def say(client: TestClient, headers: dict[str, str], message: str, **fields: str) -> dict:
    response = client.post("/api/assistant/messages", json={"message": message, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def browser_like(client: TestClient, alice: dict[str, str]) -> TestClient:
    """The client as the page's browser is: the sign-in cookie, no Authorization header."""
    client.cookies.set(SESSION_COOKIE, token_of(alice))
    return client


# The page and its files ------------------------------------------------------------------------
def test_page_is_served_to_a_signed_in_browser_with_only_external_scripts_and_styles(browser_like):
    response = browser_like.get("/assistant")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'src="/static/assistant.js"' in html and 'href="/static/assistant.css"' in html
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script: {tag}"
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None  # no script body
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+\s*=", html) is None, "inline event handler"
    for landmark in ('id="conversation-list"', 'id="messages"', 'id="composer"', 'id="storyboard"', 'id="cancel"'):
        assert landmark in html
    assert "alice@example.com" in html


def test_page_runs_under_a_strict_content_security_policy(browser_like):
    response = browser_like.get("/assistant")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    nonce = re.search(r'<script src="/static/assistant.js" nonce="([^"]+)"', response.text)
    assert nonce is not None and f"'nonce-{nonce[1]}'" in policy["script-src"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_sends_a_browser_that_is_not_signed_in_to_the_sign_in_form(client):
    response = client.get("/assistant", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fassistant")


def test_page_with_a_bad_cookie_goes_to_sign_in_and_a_bad_bearer_token_is_a_401(client):
    client.cookies.set(SESSION_COOKIE, "not-a-token")
    assert client.get("/assistant", follow_redirects=False).status_code == 303
    client.cookies.clear()
    response = client.get("/assistant", headers={"Authorization": "Bearer nope"}, follow_redirects=False)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/static/assistant.js", "text/javascript"), ("/static/assistant.css", "text/css")],
)
def test_static_files_are_served_with_their_types(client, path, media_type):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    assert len(response.content) > 1000


def test_static_files_do_not_leave_their_folder(client):
    for path in ("/static/../main.py", "/static/%2e%2e/main.py", "/static/missing.js"):
        assert client.get(path).status_code == 404, path


def test_script_uses_the_api_the_page_needs(client):
    script = client.get("/static/assistant.js").text
    for url in (
        "/api/assistant/messages/stream",
        "/api/assistant/conversations",
        "/assistant/storyboard/",
        "/api/generations/",
        "/cancel",
    ):
        assert url in script
    assert "eval(" not in script and "innerHTML = html" in script  # only server-rendered, escaped HTML


# The page's cookie on the assistant API -----------------------------------------------------------
def test_cookie_reads_conversations_but_changes_only_from_the_same_origin(browser_like):
    assert browser_like.get("/api/assistant/conversations").status_code == 200
    body = {"message": "use 2 variations"}
    for headers in (
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.testserver"},
    ):
        refused = browser_like.post("/api/assistant/messages", json=body, headers=headers)
        assert refused.status_code == 401, headers
    assert browser_like.post("/api/assistant/messages", json=body).status_code == 401  # no sign of its origin
    accepted = browser_like.post("/api/assistant/messages", json=body, headers=SAME_ORIGIN)
    assert accepted.status_code == 200, accepted.text
    # Under Referrer-Policy: no-referrer a browser sends Origin: null even from this server's page.
    behind_policy = {"Sec-Fetch-Site": "same-origin", "Origin": "null"}
    assert browser_like.post("/api/assistant/messages", json=body, headers=behind_policy).status_code == 200
    older_browser = {"Origin": ORIGIN}
    assert browser_like.post("/api/assistant/messages", json=body, headers=older_browser).status_code == 200


def test_stream_from_the_page_sends_conversation_tool_steps_reply_and_done(browser_like):
    with browser_like.stream(
        "POST",
        "/api/assistant/messages/stream",
        json={"message": "use 2 variations, no retries"},
        headers=SAME_ORIGIN,
    ) as response:
        assert response.status_code == 200
        names = [line.split(":", 1)[1].strip() for line in response.iter_lines() if line.startswith("event:")]
    assert names == ["conversation", "tool_call", "tool_result", "reply", "done"]


# The storyboard cards ----------------------------------------------------------------------------
def cards(html: str) -> list[dict[str, str]]:
    pattern = (
        r'<li class="scene-card [^"]*" id="card-(\d+)"\s+data-scene="\d+" data-status="([a-z_]+)" data-kept="(\w+)"'
    )
    return [{"scene": m[0], "status": m[1], "kept": m[2]} for m in re.findall(pattern, html)]


def test_cards_show_winner_score_attempts_and_link_each_scene_to_its_trace(browser_like, alice):
    started = say(browser_like, alice, "make a storyboard about artisan coffee with 2 scenes")
    generation = started["generation_id"]
    wait_for_status(browser_like, generation, alice, {"completed"})

    response = browser_like.get(f"/assistant/storyboard/{generation}")
    assert response.status_code == 200
    html = response.text
    assert cards(html) == [
        {"scene": "1", "status": "passed", "kept": "false"},
        {"scene": "2", "status": "passed", "kept": "false"},
    ]
    assert f'data-generation="{generation}"' in html and 'data-live="false"' in html
    for scene in (1, 2):
        assert f'href="/traces/{generation}#scene-{scene}"' in html
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 2 and all(src.startswith(f"/api/generations/{generation}/images/") for src in images)
    for src in images:  # the page's cookie loads them
        image = browser_like.get(src)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert html.count('<span class="score">') == 2 and "1 attempt" in html
    assert "artisan coffee" in html


def test_cards_of_a_refinement_mark_the_scenes_it_kept(browser_like, alice):
    started = say(browser_like, alice, "make a storyboard about artisan coffee with 2 scenes")
    first, conversation = started["generation_id"], started["conversation_id"]
    wait_for_status(browser_like, first, alice, {"completed"})
    refined = say(browser_like, alice, "make scene 2 moodier, at night", conversation_id=conversation)
    second = refined["generation_id"]
    wait_for_status(browser_like, second, alice, {"completed"})

    html = browser_like.get(f"/assistant/storyboard/{second}").text
    assert [(c["scene"], c["kept"]) for c in cards(html)] == [("1", "true"), ("2", "false")]
    assert f'Refined from <a href="/traces/{first}"' in html and "scene 1 kept as it was" in html


def test_cards_escape_what_the_user_wrote(browser_like, alice):
    started = say(browser_like, alice, 'make a storyboard about <img src=x onerror="alert(1)"> with 2 scenes')
    generation = started["generation_id"]
    wait_for_status(browser_like, generation, alice, {"completed"})
    html = browser_like.get(f"/assistant/storyboard/{generation}").text
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_cards_of_another_users_storyboard_are_not_found(browser_like, alice, bob):
    generation = say(browser_like, alice, "make a storyboard about tea with 2 scenes")["generation_id"]
    browser_like.cookies.set(SESSION_COOKIE, token_of(bob))
    assert browser_like.get(f"/assistant/storyboard/{generation}").status_code == 404
    browser_like.cookies.clear()
    assert browser_like.get(f"/assistant/storyboard/{generation}").status_code == 401  # a 401 the script shows


def test_cards_of_a_running_storyboard_are_live_and_show_pending_scenes(browser_like, alice, pipeline):
    pipeline.hold.clear()
    try:
        generation = say(browser_like, alice, "make a storyboard about rain with 2 scenes")["generation_id"]
        wait_for_status(browser_like, generation, alice, {"running"})
        html = browser_like.get(f"/assistant/storyboard/{generation}").text
        assert 'data-live="true"' in html and 'data-status="pending"' in html
    finally:
        pipeline.hold.set()


# Cancel from the page -------------------------------------------------------------------------------
def test_cancel_stops_the_conversations_current_storyboard(browser_like, alice, pipeline):
    pipeline.hold.clear()
    try:
        started = say(browser_like, alice, "make a storyboard about rain with 2 scenes")
        conversation, generation = started["conversation_id"], started["generation_id"]
        url = f"/api/assistant/conversations/{conversation}/cancel"
        cross_site = {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
        assert browser_like.post(url, headers=cross_site).status_code == 401
        response = browser_like.post(url, headers=SAME_ORIGIN)
        assert response.status_code == 200, response.text
        assert response.json()["generation_id"] == generation and response.json()["cancel_requested"] is True
    finally:
        pipeline.hold.set()
    wait_for_status(browser_like, generation, alice, {"cancelled"})
    html = browser_like.get(f"/assistant/storyboard/{generation}").text
    assert 'data-status="cancelled"' in html and "Cancelled." in html


def test_cancel_without_a_storyboard_or_of_another_users_conversation(client, alice, bob):
    conversation = say(client, alice, "use 2 variations")["conversation_id"]
    url = f"/api/assistant/conversations/{conversation}/cancel"
    nothing = client.post(url, headers=alice)
    assert nothing.status_code == 409 and "no storyboard" in nothing.json()["detail"]
    assert client.post(url, headers=bob).status_code == 404


# A job that fails ---------------------------------------------------------------------------------
class FailingPipeline(FakePipeline):
    """Plans two scenes, then the generator gives out."""

    async def __call__(self, generation_id: str, spec: JobSpec, *, on_event, **_: object) -> RunSummary:
        await on_event({"type": "run_started", "scene": None, "message": "", "data": {}})
        scenes = [{"scene_number": k, "prompt": f"scene {k}"} for k in (1, 2)]
        await on_event({"type": "plan_ready", "scene": None, "message": "", "data": {"scenes": scenes}})
        raise RuntimeError("the image generator ran out of memory")


def test_cards_of_a_failed_storyboard_say_why_it_failed(tmp_path):
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, pipeline=FailingPipeline(settings.trace_root))) as client:
        alice = add_user(client, "alice@example.com")
        generation = say(client, alice, "make a storyboard about tea with 2 scenes")["generation_id"]
        wait_for_status(client, generation, alice, {"failed"})
        html = client.get(f"/assistant/storyboard/{generation}", headers=alice).text
    assert 'data-status="failed"' in html and 'data-live="false"' in html
    alert = re.search(r'<p class="alert" role="alert">(.*?)</p>', html, re.S)
    assert alert is not None and "This storyboard failed" in alert[1]
    assert "the image generator ran out of memory" in alert[1]


# With a chat model ---------------------------------------------------------------------------------
def test_with_a_chat_model_the_page_streams_its_tool_calls_and_the_cards_follow(browser_like, alice):
    llm = ScriptedChatModel.from_replies(
        [
            tool_call_message({"description": "artisan coffee", "num_scenes": 2}, name="start_storyboard"),
            AIMessage(content="Your coffee storyboard is on its way."),
            tool_call_message({"scene": 2, "instruction": "moodier, at night"}, name="refine_scene"),
            AIMessage(content="Scene 2 is being redone at night; scene 1 stays."),
        ]
    )
    browser_like.app.state.backends.services = SimpleNamespace(llm=llm)  # type: ignore[attr-defined]

    def stream(message: str, conversation: str | None = None) -> list[tuple[str, dict]]:
        body = {"message": message, **({"conversation_id": conversation} if conversation else {})}
        with browser_like.stream("POST", "/api/assistant/messages/stream", json=body, headers=SAME_ORIGIN) as response:
            assert response.status_code == 200
            text = response.read().decode().replace("\r\n", "\n")
        return [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ", 1)[1]))
            for block in text.strip().split("\n\n")
            if block.startswith("event:")
        ]

    streamed = stream("Could you storyboard my coffee brand in two scenes?")
    deltas = [data["content"] for name, data in streamed if name == "reply_delta"]
    started = [(name, data) for name, data in streamed if name != "reply_delta"]
    assert [name for name, _ in started] == ["conversation", "tool_call", "tool_result", "reply", "done"]
    assert started[1][1]["name"] == "start_storyboard" and started[3][1]["content"].endswith("on its way.")
    assert len(deltas) > 1 and "".join(deltas) == started[3][1]["content"]  # the reply streamed word by word
    first, conversation = started[-1][1]["generation_id"], started[0][1]["conversation_id"]
    wait_for_status(browser_like, first, alice, {"completed"})

    refined = [
        item for item in stream("Make the second scene moodier, at night.", conversation) if item[0] != "reply_delta"
    ]
    assert refined[1][1]["name"] == "refine_scene" and refined[2][1]["action"]["keep_scenes"] == 1
    second = refined[-1][1]["generation_id"]
    wait_for_status(browser_like, second, alice, {"completed"})
    html = browser_like.get(f"/assistant/storyboard/{second}").text
    assert [(c["scene"], c["kept"]) for c in cards(html)] == [("1", "true"), ("2", "false")]
