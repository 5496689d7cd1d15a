"""The trace viewer pages: rendering, ownership, signing in to a GET-only cookie."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.support import wait_for_status

SMALL = {"num_variations": 2, "max_enhancement_iterations": 1}


def _finished(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(
        "/api/generate", json={"prompt": "Artisan coffee", "num_scenes": 2, "settings": SMALL}, headers=headers
    )
    assert response.status_code == 202, response.text
    generation_id = response.json()["generation_id"]
    wait_for_status(client, generation_id, headers, {"completed"})
    return generation_id


def test_trace_page_shows_scenes_scores_and_the_marked_winner(client: TestClient, alice: dict[str, str]) -> None:
    generation_id = _finished(client, alice)
    page = client.get(f"/traces/{generation_id}", headers=alice)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'id="scene-1"' in html and 'id="scene-2"' in html
    assert html.count('data-winner="true"') == 2  # one winner per scene
    assert "Why the winner won" in html
    assert f"/api/generations/{generation_id}/trace/files/scene_1/" in html
    assert 'data-live="false"' in html  # finished: no event stream opened

    fragment = client.get(f"/traces/{generation_id}?fragment=true", headers=alice)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="scene-1"' in fragment.text

    listing = client.get("/traces", headers=alice)
    assert listing.status_code == 200 and f'href="/traces/{generation_id}"' in listing.text


def test_pages_belong_to_their_owner(client: TestClient, alice: dict[str, str], bob: dict[str, str]) -> None:
    generation_id = _finished(client, alice)
    assert client.get(f"/traces/{generation_id}", headers=bob).status_code == 404
    anonymous = client.get(f"/traces/{generation_id}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    assert client.get("/traces/no-such-id", headers=alice).status_code == 404


def test_the_sign_in_form_sets_a_get_only_cookie(client: TestClient, alice: dict[str, str]) -> None:
    generation_id = _finished(client, alice)
    token = alice["Authorization"].removeprefix("Bearer ")
    client.cookies.clear()
    # A token in the address is no longer adopted: the page asks the caller to sign in.
    response = client.get(f"/traces/{generation_id}?token={token}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert "set-cookie" not in response.headers
    signed_in = client.post("/login", data={"token": token, "next": f"/traces/{generation_id}"}, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == f"/traces/{generation_id}"
    assert "httponly" in signed_in.headers["set-cookie"].lower()
    # The cookie now authenticates the page and its images ...
    assert client.get(f"/traces/{generation_id}").status_code == 200
    assert client.get(f"/api/generations/{generation_id}/trace/files/scene_1/image_1.png").status_code == 200
    # ... but never a change: POST endpoints ignore it.
    assert client.post(f"/api/generations/{generation_id}/cancel").status_code == 401
    client.cookies.clear()
