"""The trace viewer in a real browser: headless Chromium (Debian's chromium and chromedriver,
installed by .ci/run) against a real uvicorn server with offline backends."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import CHROMEDRIVER, CHROMIUM, MISSING, headless_chromium
from PIL import Image, ImageStat

from tests.api.server import SLOW_GENERATOR_ENV, Server, wait_until

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [
    pytest.mark.integration,  # a uvicorn process and a headless browser
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason=MISSING,
    ),
]

SMALL = {"num_variations": 2, "max_enhancement_iterations": 1, "max_retries": 0, "resolution": 128}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    instance = Server(tmp_path)
    with instance:
        yield instance


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[Server]:
    """Each generator call waits 2 s, so the job is still running when the page opens."""
    instance = Server(tmp_path, {**SLOW_GENERATOR_ENV, "SLOW_GENERATOR_DELAY_S": "2.0"})
    with instance:
        yield instance


@pytest.fixture
def browser() -> Iterator[object]:
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _sign_in(browser, server: Server, headers: dict[str, str], page: str) -> None:
    """Open ``page`` signed out: the viewer sends the browser to its sign-in form, which takes the
    token in a POST (never in the address) and comes back to the page."""
    browser.get(f"{server.base_url}{page}")
    assert "/login?next=" in browser.current_url
    browser.find_element("id", "token").send_keys(headers["Authorization"].removeprefix("Bearer "))
    browser.find_element("id", "sign-in").click()
    _wait(lambda: browser.current_url == f"{server.base_url}{page}", what="the page after signing in")


def _submit(server: Server, headers: dict[str, str]) -> str:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        response = client.post(
            "/api/generate",
            json={"prompt": "Artisan coffee that starts your morning right", "num_scenes": 2, "settings": SMALL},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["generation_id"])


def test_finished_job_page_marks_winners_loads_every_image_and_is_not_blank(
    server: Server, browser, tmp_path: Path
) -> None:
    headers = server.add_user("viewer@example.com")
    generation_id = _submit(server, headers)
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        wait_until(client, f"/api/generations/{generation_id}", headers, lambda d: d["status"] == "completed", 120)
    _sign_in(browser, server, headers, f"/traces/{generation_id}")
    assert "token" not in browser.current_url
    assert browser.find_element("id", "status").text == "completed"
    winners = browser.find_elements("css selector", "figure.winner")
    assert len(winners) == 2 and all("winner" in w.text for w in winners)

    images = browser.find_elements("tag name", "img")
    assert len(images) >= 4  # two variations per scene, plus scene 2's reference
    for image in images:
        browser.execute_script("arguments[0].scrollIntoView();", image)
    loaded = "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0);"
    _wait(lambda: browser.execute_script(loaded), what="every image to load")

    browser.execute_script("window.scrollTo(0, 0);")
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    shot.save(tmp_path / "trace_page.png")
    assert max(ImageStat.Stat(shot).stddev) > 10, "the screenshot is blank"
    assert len(shot.getcolors(maxcolors=1 << 20) or []) > 200


def test_running_job_page_updates_live(slow_server: Server, browser) -> None:
    server = slow_server
    headers = server.add_user("live@example.com")
    generation_id = _submit(server, headers)
    _sign_in(browser, server, headers, f"/traces/{generation_id}")
    # Read the status in one script call: live updates replace the element, so a found element
    # can go stale before its text is read.
    status = "return document.getElementById('status').textContent.trim();"
    assert browser.execute_script(status) in {"queued", "running"}
    # No reload from here on: the page follows the job over SSE.
    _wait(lambda: browser.execute_script(status) == "completed", 120, "the page to show completed")
    assert len(browser.find_elements("css selector", "figure.winner")) == 2
