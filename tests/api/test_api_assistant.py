"""The assistant panel over HTTP: a conversation that starts, follows, tunes, refines and
explains storyboards through the jobs API (TestClient + FakePipeline), with its memory in the
service's durable checkpointer and its conversations private to their user."""

from __future__ import annotations

import json
import shutil
import time
from types import SimpleNamespace

from fakes import ScriptedChatModel, tool_call_message
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage
from sqlmodel import Session

from imageforge.api.crud import generation as crud
from imageforge.api.main import create_app
from imageforge.traces.reader import read_trace
from tests.api.support import add_user, make_settings, wait_for_status

URL = "/api/assistant/messages"


def say(client: TestClient, headers: dict[str, str], message: str, **fields: str) -> dict:
    response = client.post(URL, json={"message": message, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def stored_request(client: TestClient, generation_id: str) -> dict:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return crud.get_generation(session=session, generation_id=generation_id, user_id=None).request


def test_a_conversation_starts_follows_tunes_refines_and_explains(client, alice, pipeline):
    # Start: a new conversation, a storyboard submitted with the conversation's settings.
    started = say(client, alice, "make a 15 second storyboard about artisan coffee")
    conversation, first = started["conversation_id"], started["generation_id"]
    assert started["actions"][0]["type"] == "storyboard_started" and started["actions"][0]["generation_id"] == first
    request = stored_request(client, first)
    assert request["concept"] == "artisan coffee" and request["target_duration_s"] == 15.0
    wait_for_status(client, first, alice, {"completed"})

    # Status of the current storyboard.
    status = say(client, alice, "how is it going?", conversation_id=conversation)
    assert status["actions"][0] == {
        **status["actions"][0],
        "type": "status_reported",
        "generation_id": first,
        "status": "completed",
        "scenes_finished": 2,
        "scenes_total": 2,
    }
    assert "completed" in status["reply"] and "2 of 2 scenes finished" in status["reply"]

    # Settings in words, validated; out of range gets a helpful reply, not an error.
    changed = say(client, alice, "use 6 variations", conversation_id=conversation)
    assert changed["actions"][0]["changes"] == {"num_variations": {"from": 4, "to": 6}}
    refused = say(client, alice, "use 40 variations", conversation_id=conversation)
    assert refused["actions"] == [] and "between 1 and 16" in refused["reply"]

    # Refine scene 2: a new generation keeping scene 1 of the current one.
    refined = say(client, alice, "make scene 2 moodier, at night", conversation_id=conversation)
    action = refined["actions"][0]
    second = action["generation_id"]
    assert action["type"] == "scene_refined" and action["reuse_from"] == first and action["keep_scenes"] == 1
    assert refined["generation_id"] == second != first
    request = stored_request(client, second)
    assert request["reuse_from"] == first and request["keep_scenes"] == 1
    assert request["plan"]["scenes"][0]["prompt"] == "scene 1 of artisan coffee"
    assert request["plan"]["scenes"][1]["prompt"] == "scene 2 of artisan coffee, moodier, at night"
    assert request["settings"]["num_variations"] == 6 and request["concept"] == "artisan coffee"
    assert request["backends"] == stored_request(client, first)["backends"]
    wait_for_status(client, second, alice, {"completed"})

    # Explain, from the new generation's trace (6 variations; the FakePipeline's image 6 wins).
    why = say(client, alice, "why did image 6 win in scene 1?", conversation_id=conversation)
    assert why["reply"].startswith("Image 6 won scene 1 with an overall score of 61.0/100")
    assert "runner-up, image 5" in why["reply"] and "margin of 1.0" in why["reply"] and "pickscore" in why["reply"]
    details = why["actions"][0]["scenes"][0]
    assert why["actions"][0]["generation_id"] == second
    assert details["image"] == 6 and details["runner_up"] == 5 and details["deciding_component"] == "pickscore"
    lost = say(client, alice, "why did image 3 win in scene 1?", conversation_id=conversation)
    assert lost["reply"].startswith("Image 3 did not win scene 1: image 6 did")

    # Unknown request: what the assistant can do, and nothing done.
    unknown = say(client, alice, "sing me a song", conversation_id=conversation)
    assert unknown["actions"] == [] and "make a 15 second storyboard" in unknown["reply"]

    # The conversation's history, current storyboard and settings.
    detail = client.get(f"/api/assistant/conversations/{conversation}", headers=alice).json()
    assert detail["generation_id"] == second and detail["settings"]["num_variations"] == 6
    users = [m["content"] for m in detail["messages"] if m["role"] == "user"]
    assert users[0] == "make a 15 second storyboard about artisan coffee" and users[-1] == "sing me a song"
    assert [m["action"]["type"] for m in detail["messages"] if m["role"] == "tool" and m["action"]][:2] == [
        "storyboard_started",
        "status_reported",
    ]


def test_refining_before_the_earlier_scenes_finished_is_refused(client, alice, pipeline):
    pipeline.hold.clear()  # the storyboard gets planned, then waits before scene 1
    try:
        started = say(client, alice, "make a storyboard about tea with 2 scenes")
        conversation, first = started["conversation_id"], started["generation_id"]
        deadline = time.monotonic() + 20
        while first not in pipeline.started:  # planned (the plan is stored before this)
            assert time.monotonic() < deadline, "the storyboard was never planned"
            time.sleep(0.01)
        refused = say(client, alice, "make scene 2 moodier", conversation_id=conversation)
    finally:
        pipeline.hold.set()
    assert refused["actions"] == [] and refused["generation_id"] == first
    assert "can't refine scene 2" in refused["reply"] and "scene 1 has not finished" in refused["reply"]
    listing = client.get("/api/generations", headers=alice).json()
    assert listing["count"] == 1  # nothing new was submitted
    wait_for_status(client, first, alice, {"completed"})
    out_of_range = say(client, alice, "make scene 5 warmer", conversation_id=conversation)
    assert "has scenes 1 to 2" in out_of_range["reply"] and out_of_range["actions"] == []


def test_a_named_generation_becomes_the_conversations_current_one(client, alice, settings):
    generation = client.post("/api/generate", json={"prompt": "Luxury watch", "num_scenes": 1}, headers=alice).json()
    generation_id = generation["generation_id"]
    wait_for_status(client, generation_id, alice, {"completed"})
    answer = say(client, alice, "status", generation_id=generation_id)
    assert answer["generation_id"] == generation_id and "1 of 1 scenes finished" in answer["reply"]
    again = say(client, alice, "why did it win?", conversation_id=answer["conversation_id"])
    assert again["reply"].startswith("Image 4 won scene 1")
    shutil.rmtree(settings.trace_root / generation_id)  # as trace retention would
    gone = say(client, alice, "why did it win?", conversation_id=answer["conversation_id"])
    assert "no longer on disk" in gone["reply"] and gone["actions"] == []


def test_memory_across_requests_and_a_restart(settings, pipeline):
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        alice = add_user(client, "alice@example.com")
        first = say(client, alice, "seed 42")
        conversation = first["conversation_id"]
        second = say(client, alice, "be stricter", conversation_id=conversation)
        assert "seed 42" in second["reply"] and "strict mode on" in second["reply"]
    # The server stopped; the conversation is in the checkpoint database on disk.
    with TestClient(create_app(settings, pipeline=pipeline)) as restarted:
        third = say(restarted, alice, "settings", conversation_id=conversation)
        assert "seed 42" in third["reply"] and "quality >= 40" in third["reply"]
        listing = restarted.get("/api/assistant/conversations", headers=alice).json()
        assert listing["count"] == 1 and listing["data"][0]["title"] == "seed 42"


def test_conversations_and_generations_belong_to_their_user(client, alice, bob):
    mine = say(client, alice, "make a storyboard about tea")
    conversation, generation_id = mine["conversation_id"], mine["generation_id"]
    for body in ({"conversation_id": conversation}, {"generation_id": generation_id}):
        response = client.post(URL, json={"message": "how is it going?", **body}, headers=bob)
        assert response.status_code == 404, response.text
        assert client.post(f"{URL}/stream", json={"message": "status", **body}, headers=bob).status_code == 404
    assert client.get(f"/api/assistant/conversations/{conversation}", headers=bob).status_code == 404
    assert client.delete(f"/api/assistant/conversations/{conversation}", headers=bob).status_code == 404
    assert client.get("/api/assistant/conversations", headers=bob).json()["count"] == 0  # nothing stored for bob
    # Bob's own conversation cannot reach Alice's storyboard by naming it to a tool either.
    client.app.state.backends.services = SimpleNamespace(  # type: ignore[attr-defined]
        llm=ScriptedChatModel.from_replies(
            [
                tool_call_message({"generation_id": generation_id}, name="report_status"),
                AIMessage(content="Not found."),
            ]
        )
    )
    theirs = say(client, bob, f"how is {generation_id} going?")
    assert theirs["actions"] == [] and theirs["generation_id"] is None
    steps = client.get(f"/api/assistant/conversations/{theirs['conversation_id']}", headers=bob).json()["messages"]
    assert steps[2]["role"] == "tool" and steps[2]["content"] == f"I can't find storyboard {generation_id}."
    assert client.post(URL, json={"message": "hi"}).status_code == 401


def test_bad_bodies_are_422_and_unknown_conversations_404(client, alice):
    for body in (
        {"message": ""},
        {"message": "   "},
        {"message": "hi", "conversation_id": "../x"},
        {"message": "hi", "extra": 1},
    ):
        assert client.post(URL, json=body, headers=alice).status_code == 422, body
    assert client.post(URL, json={"message": "hi", "conversation_id": "nope"}, headers=alice).status_code == 404
    assert client.get("/api/assistant/conversations", headers=alice).json()["count"] == 0


def test_the_stream_shows_each_step_then_the_result(client, alice):
    with client.stream(
        "POST",
        f"{URL}/stream",
        json={"message": "use 6 variations and how is it going?"},
        headers=alice,
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ", 1)[1]))
        for block in body.replace("\r\n", "\n").strip().split("\n\n")
        if block.startswith("event:")
    ]
    assert [kind for kind, _ in events] == [
        "conversation",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "reply",
        "done",
    ]
    assert events[1][1]["name"] == "change_settings" and events[3][1]["name"] == "report_status"
    done = events[-1][1]
    assert done["conversation_id"] == events[0][1]["conversation_id"]
    assert [a["type"] for a in done["actions"]] == ["settings_changed"] and done["reply"] == events[-2][1]["content"]


def test_with_a_configured_chat_model_the_model_chooses_the_tools(client, alice):
    llm = ScriptedChatModel.from_replies(
        [
            tool_call_message({"description": "artisan coffee", "num_scenes": 1}, name="start_storyboard"),
            AIMessage(content="Your one-scene coffee storyboard is on its way."),
        ]
    )
    client.app.state.backends.services = SimpleNamespace(llm=llm)  # type: ignore[attr-defined]
    answer = say(client, alice, "Could you storyboard my coffee brand? Just one scene.")
    assert answer["reply"] == "Your one-scene coffee storyboard is on its way."
    assert answer["actions"][0]["type"] == "storyboard_started"
    assert stored_request(client, answer["generation_id"])["num_scenes"] == 1


def test_deleting_a_conversation_forgets_it(client, alice):
    conversation = say(client, alice, "seed 42")["conversation_id"]
    assert client.delete(f"/api/assistant/conversations/{conversation}", headers=alice).status_code == 204
    assert client.get(f"/api/assistant/conversations/{conversation}", headers=alice).status_code == 404
    assert (
        client.post(URL, json={"message": "settings", "conversation_id": conversation}, headers=alice).status_code
        == 404
    )


def test_refining_through_the_real_offline_pipeline_keeps_the_earlier_scenes(tmp_path):
    settings = make_settings(tmp_path, generator="sketch", scoring={"scorers": ["offline"]}, llm="heuristic")
    with TestClient(create_app(settings)) as client:  # the storyboard graph itself, offline backends
        alice = add_user(client, "alice@example.com")
        conversation = say(client, alice, "use 2 variations, no more than 1 iteration, 128px, seed 5")[
            "conversation_id"
        ]
        first = say(
            client,
            alice,
            "make a storyboard about artisan coffee with 3 scenes",
            conversation_id=conversation,
        )
        wait_for_status(client, first["generation_id"], alice, {"completed"}, timeout_s=120)
        refined = say(client, alice, "make scene 2 moodier, at night", conversation_id=conversation)
        wait_for_status(client, refined["generation_id"], alice, {"completed"}, timeout_s=120)
        before = read_trace(settings.trace_root, first["generation_id"]).summary
        after = read_trace(settings.trace_root, refined["generation_id"]).summary
        assert [s.scene_number for s in after.scenes] == [1, 2, 3]
        assert after.scenes[0].winner.overall == before.scenes[0].winner.overall  # kept, not regenerated
        assert after.enhancements[1].original_prompt.endswith(", moodier, at night")
        assert after.settings["num_variations"] == 2 and after.settings["seed"] == 5
        why = say(client, alice, "why did image 1 win in scene 3?", conversation_id=conversation)
        assert why["actions"][0]["generation_id"] == refined["generation_id"] and "scene 3" in why["reply"]
