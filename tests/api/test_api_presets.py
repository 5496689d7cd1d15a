"""Presets (seed 001): CRUD, per-user names and isolation, saving a generation's settings,
and applying a preset by name in every generate request (explicit settings win)."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select

from imageforge.api.models.generation import Generation
from tests.api.support import wait_for_status

BASE = "/api/presets"


def new_preset(client: TestClient, headers: dict[str, str], name: str = "Fast draft", **fields: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "settings": {"num_variations": 6, "max_retries": 4, "backends": {"generator": "sketch"}},
        **fields,
    }
    response = client.post(BASE, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def stored_request(client: TestClient, generation_id: str) -> dict[str, Any]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        generation = session.get(Generation, generation_id)
        assert generation is not None
        return generation.request


def generation_count(client: TestClient) -> int:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return len(session.exec(select(Generation)).all())


def usage(client: TestClient, headers: dict[str, str], preset_id: int) -> int:
    return client.get(f"{BASE}/{preset_id}", headers=headers).json()["usage_count"]


def test_preset_crud(client: TestClient, alice: dict[str, str]) -> None:
    preset = new_preset(client, alice, description="quick looks")
    assert preset["settings"] == {
        "num_variations": 6,
        "max_retries": 4,
        "backends": {"generator": "sketch"},
    }  # only what was given
    assert preset["usage_count"] == 0 and preset["description"] == "quick looks"
    other = new_preset(client, alice, name="Archive", settings={"resolution": 1024})

    listed = client.get(BASE, headers=alice).json()
    assert listed["count"] == 2 and [p["name"] for p in listed["data"]] == ["Archive", "Fast draft"]
    assert client.get(f"{BASE}/{preset['id']}", headers=alice).json()["name"] == "Fast draft"

    changed = client.patch(
        f"{BASE}/{preset['id']}",
        json={"name": "Quick", "settings": {"num_variations": 2}},
        headers=alice,
    )
    assert changed.status_code == 200
    assert changed.json()["name"] == "Quick" and changed.json()["settings"] == {"num_variations": 2}
    assert changed.json()["description"] == "quick looks"

    assert client.delete(f"{BASE}/{other['id']}", headers=alice).status_code == 200
    assert client.get(f"{BASE}/{other['id']}", headers=alice).status_code == 404
    assert client.get(BASE, headers=alice).json()["count"] == 1


def test_preset_validation_and_duplicate_names(client: TestClient, alice: dict[str, str]) -> None:
    preset = new_preset(client, alice)
    duplicate = client.post(BASE, json={"name": "  fast   DRAFT ", "settings": {}}, headers=alice)
    assert duplicate.status_code == 409 and duplicate.json()["detail"][0]["loc"] == ["body", "name"]
    other = new_preset(client, alice, name="Slow")
    assert client.patch(f"{BASE}/{other['id']}", json={"name": "Fast draft"}, headers=alice).status_code == 409
    assert client.get(f"{BASE}/{other['id']}", headers=alice).json()["name"] == "Slow"

    for body, field in (
        ({"name": "x", "settings": {"num_variations": 99}}, "num_variations"),
        ({"name": "x", "settings": {"colour": "red"}}, "colour"),
        ({"name": "x"}, "generation_id"),  # neither source
        ({"name": "x", "settings": {}, "generation_id": "abc"}, "generation_id"),  # both
        ({"name": " ", "settings": {}}, "name"),
        ({"name": "x", "generation_id": "../etc"}, "generation_id"),
    ):
        response = client.post(BASE, json=body, headers=alice)
        assert response.status_code == 422, body
        assert field in str(response.json()["detail"]), body
    assert client.get(BASE, headers=alice).json()["count"] == 2
    assert client.get(f"{BASE}/{preset['id']}", headers=alice).json()["settings"]["num_variations"] == 6


def test_presets_are_per_user(client: TestClient, alice: dict[str, str], bob: dict[str, str]) -> None:
    preset = new_preset(client, alice)
    for method, body in (("GET", None), ("PATCH", {"name": "mine"}), ("DELETE", None)):
        assert client.request(method, f"{BASE}/{preset['id']}", json=body, headers=bob).status_code == 404
    assert client.get(BASE, headers=bob).json() == {"data": [], "count": 0}
    assert (
        client.post(BASE, json={"name": "Fast draft", "settings": {}}, headers=bob).status_code == 201
    )  # names are per user
    refused = client.post(
        "/api/generate",
        json={"prompt": "Coffee", "preset": "fast draft", "num_scenes": 1},
        headers=bob,
    )
    assert refused.status_code == 202  # bob's own preset of that name, not alice's
    assert stored_request(client, refused.json()["generation_id"])["settings"]["num_variations"] == 4
    assert usage(client, alice, preset["id"]) == 0


def test_save_a_generations_settings(client: TestClient, alice: dict[str, str], bob: dict[str, str]) -> None:
    body = {
        "prompt": "Artisan coffee",
        "num_scenes": 1,
        "settings": {
            "num_variations": 3,
            "seed": 5,
            "strict": True,
            "backends": {"llm": "heuristic", "scorers": ["offline"]},
        },
    }
    generation_id = client.post("/api/generate", json=body, headers=alice).json()["generation_id"]
    wait_for_status(client, generation_id, alice, {"completed"})

    preset = client.post(BASE, json={"name": "Like that one", "generation_id": generation_id}, headers=alice)
    assert preset.status_code == 201, preset.text
    settings = preset.json()["settings"]
    assert settings["num_variations"] == 3 and settings["seed"] == 5 and settings["strict"] is True
    assert settings["backends"]["llm"] == "heuristic" and settings["backends"]["scorers"] == ["offline"]
    assert preset.json()["source_generation_id"] == generation_id

    assert client.post(BASE, json={"name": "x", "generation_id": generation_id}, headers=bob).status_code == 404
    assert client.post(BASE, json={"name": "x", "generation_id": "nope"}, headers=alice).status_code == 404


def test_apply_a_preset_with_overrides_and_count_its_use(client: TestClient, alice: dict[str, str]) -> None:
    preset = new_preset(client, alice)
    body = {
        "prompt": "Coffee",
        "num_scenes": 1,
        "preset": "FAST DRAFT",
        "settings": {"num_variations": 2, "backends": {"llm": "heuristic"}},
    }
    accepted = client.post("/api/generate", json=body, headers=alice)
    assert accepted.status_code == 202, accepted.text
    request = stored_request(client, accepted.json()["generation_id"])
    assert request["settings"]["num_variations"] == 2  # the request's explicit value wins
    assert request["settings"]["max_retries"] == 4  # the preset's value is the base
    assert request["settings"]["quality_threshold"] == 30  # neither says: the default
    assert (
        request["backends"]["generator"]["backend"] == "sketch" and request["backends"]["llm"]["backend"] == "heuristic"
    )
    assert request["preset"] == "FAST DRAFT"
    assert usage(client, alice, preset["id"]) == 1

    # Refused requests do not count, and store nothing.
    before = generation_count(client)
    unknown = client.post("/api/generate", json={**body, "preset": "Nope"}, headers=alice)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "preset"]
    bad_character = client.post("/api/generate", json={**body, "characters": ["nobody"]}, headers=alice)
    assert bad_character.status_code == 422 and bad_character.json()["detail"][0]["loc"] == [
        "body",
        "characters",
        0,
    ]
    out_of_range = client.post("/api/generate", json={**body, "settings": {"num_variations": 99}}, headers=alice)
    assert out_of_range.status_code == 422
    assert generation_count(client) == before
    assert usage(client, alice, preset["id"]) == 1


def test_a_preset_in_batch_items_and_image_uploads(client: TestClient, alice: dict[str, str]) -> None:
    preset = new_preset(client, alice)
    batch = client.post(
        "/api/storyboards/batch",
        json={
            "items": [
                {"prompt": "a", "num_scenes": 1, "preset": "Fast draft"},
                {"prompt": "b", "preset": "Nope"},
            ]
        },
        headers=alice,
    ).json()
    assert batch["accepted"] == 1 and batch["rejected"] == 1
    first, second = batch["results"]
    assert stored_request(client, first["generation_id"])["settings"]["num_variations"] == 6
    assert second["errors"][0]["loc"] == ["preset"] and "Nope" in second["reason"]

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 60, 30)).save(buffer, format="PNG")
    upload = client.post(
        "/api/generate-with-image",
        data={"prompt": "Coffee", "num_scenes": "1", "preset": "Fast draft", "max_retries": "1"},
        files={"image": ("ref.png", buffer.getvalue(), "image/png")},
        headers=alice,
    )
    assert upload.status_code == 202, upload.text
    settings = stored_request(client, upload.json()["generation_id"])["settings"]
    assert settings["num_variations"] == 6 and settings["max_retries"] == 1
    assert usage(client, alice, preset["id"]) == 2
