"""The assistant panel in a real browser: headless Chromium (Debian's chromium and chromedriver)
against a real uvicorn server with offline backends and the intent parser, so every step below
is what a user does with the keyboard on /assistant."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser import CHROMEDRIVER, CHROMIUM, MISSING, headless_chromium
from PIL import Image, ImageStat

from imageforge.api.deps import SESSION_COOKIE
from tests.api.server import SLOW_GENERATOR_ENV, Server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [
    pytest.mark.integration,  # a uvicorn process and a headless browser
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason=MISSING,
    ),
]

#: Where the test leaves its screenshot (docs/assistant-panel.png is a copy of one).
SCREENSHOT = "assistant_panel.png"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Each generator call waits a little, so the cards are seen filling in while the job runs."""
    instance = Server(tmp_path, {**SLOW_GENERATOR_ENV, "SLOW_GENERATOR_DELAY_S": "1.0"})
    with instance:
        yield instance


def _browser(width: int, height: int) -> object:
    return headless_chromium(width, height, console_log=True)


@pytest.fixture
def browser() -> Iterator[object]:
    driver = _browser(1400, 1000)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _sign_in(browser, server: Server, email: str) -> None:
    """The pages' sign-in: /assistant sends a stranger to the sign-in form, which sets the
    session cookie and brings them back; no token is ever in the address."""
    token = server.add_user(email)["Authorization"].removeprefix("Bearer ")
    browser.get(f"{server.base_url}/assistant")
    assert browser.current_url == f"{server.base_url}/login?next=%2Fassistant"
    browser.find_element("id", "token").send_keys(token)
    browser.find_element("id", "sign-in").click()
    _wait(lambda: browser.current_url == f"{server.base_url}/assistant", what="the way back to the panel")
    assert token not in browser.current_url
    browser.get_log("browser")  # drop the sign-in page's messages (its favicon): only the panel's count


def _say(browser, text: str) -> None:
    """Type into the message box and press Enter, as a user does."""
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element("id", "message")
    box.click()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def _keys(browser, name: str) -> None:
    """Press a key on whatever has the focus."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(browser).send_keys(getattr(Keys, name)).perform()


def _run(browser, script: str) -> object:
    return browser.execute_script(script)


def _idle(browser) -> bool:
    return bool(_run(browser, "return !document.getElementById('send').disabled;"))


def _replies(browser) -> list[str]:
    return list(
        _run(
            browser,
            "return Array.from(document.querySelectorAll('#messages li.assistant:not(.intro)'))"
            ".map(li => li.textContent);",
        )
    )


def _tools(browser) -> list[dict[str, str]]:
    return list(
        _run(
            browser,
            "return Array.from(document.querySelectorAll('#messages li.tool')).map(li => "
            "({name: li.dataset.tool, status: li.querySelector('.tool-status').textContent, "
            "body: li.querySelector('.tool-body').textContent}));",
        )
    )


def _board(browser) -> dict[str, object]:
    """The storyboard as the page shows it, read in one script call (a refresh replaces it)."""
    return dict(
        _run(
            browser,
            """
            const board = document.getElementById('board');
            if (!board) return {generation: null, status: null, cards: []};
            return {
              generation: board.dataset.generation,
              status: board.dataset.status,
              cards: Array.from(board.querySelectorAll('li.scene-card')).map(card => {
                const img = card.querySelector('img');
                return {
                  scene: Number(card.dataset.scene),
                  status: card.dataset.status,
                  kept: card.dataset.kept === 'true',
                  image: img ? img.getAttribute('src') : null,
                  loaded: img ? img.complete && img.naturalWidth > 0 : false,
                  score: (card.querySelector('.score') || {}).textContent || null,
                  link: card.querySelector('a.trace-link').getAttribute('href'),
                };
              }),
            };
            """,
        )
    )


def _finished(card: dict[str, object]) -> bool:
    return card["status"] in ("passed", "accepted_with_warning")


def test_chat_starts_a_storyboard_whose_cards_fill_in_then_a_refinement_keeps_scene_1(
    server: Server, browser, tmp_path: Path
) -> None:
    _sign_in(browser, server, "panel@example.com")
    assert _run(browser, "return document.activeElement.tagName") == "BODY"
    assert browser.find_element("id", "conversation-empty").is_displayed()

    # Settings, then a storyboard, in words; each tool call shows up in the chat as it runs.
    _say(browser, "use 2 variations, 1 iteration, no retries and resolution 128")
    _wait(lambda: _idle(browser) and _replies(browser), what="the settings reply")
    assert _tools(browser)[0]["name"] == "change_settings" and _tools(browser)[0]["status"] == "done"
    assert "Settings changed" in _replies(browser)[-1]
    assert _run(browser, "return document.activeElement.id") == "message"  # focus back in the box
    _keys(browser, "TAB")
    assert _run(browser, "return document.activeElement.id") == "send"  # then the button that sends it
    browser.find_element("id", "message").click()

    _say(browser, "make a storyboard about artisan coffee with 2 scenes")
    first = _wait(lambda: _board(browser)["generation"], 30, "the storyboard to start")
    assert _board(browser)["status"] in ("queued", "running")  # it shows while the job runs
    _wait(lambda: _idle(browser), what="the reply")
    assert _tools(browser)[-1]["name"] == "start_storyboard" and f"Started storyboard {first}" in _replies(browser)[-1]
    # The conversation is in the address (a reload keeps it) and marked in the list.
    conversation = _run(browser, "return new URLSearchParams(location.search).get('conversation');")
    current = (
        "const b = document.querySelector('#conversation-list [aria-current=\"true\"]'); return b && b.dataset.id;"
    )
    assert conversation and _wait(lambda: _run(browser, current), what="the listed conversation") == conversation

    # The cards fill in live: scene 1's card finishes while the job still runs (no reload), then
    # both scenes have a winner thumbnail that loads and a score.
    def partly_done() -> bool:
        board = _board(browser)
        done = [c["scene"] for c in board["cards"] if _finished(c)]
        return board["status"] == "running" and done == [1]

    _wait(partly_done, 120, "scene 1's card to finish while scene 2 runs")
    assert browser.find_element("id", "cancel").is_displayed()  # a running storyboard can be cancelled
    _wait(lambda: _board(browser)["status"] == "completed", 120, "the storyboard to complete")
    board = _board(browser)
    assert [c["scene"] for c in board["cards"]] == [1, 2] and all(_finished(c) for c in board["cards"])
    _wait(lambda: all(c["loaded"] for c in _board(browser)["cards"]), what="the thumbnails to load")
    assert all(c["score"] and c["image"].startswith(f"/api/generations/{first}/images/") for c in board["cards"])
    assert not any(c["kept"] for c in board["cards"])
    assert not browser.find_element("id", "cancel").is_displayed()  # nothing left to cancel

    # Why did an image win: the explanation comes from the trace.
    _say(browser, "why did image 2 win in scene 1?")
    _wait(lambda: _idle(browser) and _tools(browser)[-1]["name"] == "explain_winner", what="the explanation")
    assert "scene 1" in _replies(browser)[-1]

    # Refine scene 2: a new storyboard that keeps scene 1 (marked kept) and redoes scene 2.
    _say(browser, "make scene 2 moodier, at night")
    second = _wait(lambda: (g := _board(browser)["generation"]) != first and g, 30, "the refined storyboard to show")
    _wait(lambda: _idle(browser), what="the refine reply")
    assert f"as new storyboard {second}" in _replies(browser)[-1]
    assert browser.find_element("id", "kept-note").text.startswith(f"Refined from {first}")
    _wait(lambda: _board(browser)["status"] == "completed", 120, "the refined storyboard to complete")
    _wait(lambda: all(c["loaded"] for c in _board(browser)["cards"]), what="the refined thumbnails to load")
    cards = _board(browser)["cards"]
    assert [(c["scene"], c["kept"]) for c in cards] == [(1, True), (2, False)]
    assert all(_finished(c) for c in cards)

    # Status, in words.
    _say(browser, "how is it going?")
    _wait(lambda: _idle(browser) and _tools(browser)[-1]["name"] == "report_status", what="the status")
    assert f"Storyboard {second}" in _replies(browser)[-1] and "2 of 2 scenes finished" in _replies(browser)[-1]

    # The conversation is listed, and reopening it after a reload brings the chat and cards back.
    browser.refresh()
    _wait(lambda: len(_replies(browser)) >= 4 and _board(browser)["generation"] == second, what="the reload")
    assert len(browser.find_elements("css selector", "#conversation-list button[aria-current='true']")) == 1

    # Screenshot of the panel as it stands: not blank.
    browser.execute_script("window.scrollTo(0, 0);")
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    shot.save(tmp_path / SCREENSHOT)
    if os.environ.get("IMAGEFORGE_SCREENSHOT_DIR"):  # how docs/assistant-panel.png was made (128 colours)
        small = shot.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(Path(os.environ["IMAGEFORGE_SCREENSHOT_DIR"]) / SCREENSHOT, optimize=True)
    assert max(ImageStat.Stat(shot).stddev) > 10, "the screenshot is blank"
    assert len(shot.getcolors(maxcolors=1 << 20) or []) > 200

    # No script error, no request refused (a CSP violation is logged as SEVERE too).
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe

    # At phone width everything is reachable without sideways scrolling.
    browser.set_window_size(390, 844)
    _wait(lambda: _run(browser, "return window.innerWidth") <= 400, what="the narrow window")
    overflow = "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
    assert _run(browser, overflow) <= 0
    for element in ("message", "send", "storyboard", "new-conversation"):
        rect = dict(_run(browser, f"return document.getElementById('{element}').getBoundingClientRect().toJSON();"))
        assert rect["width"] > 0 and rect["right"] <= 390, (element, rect)
    if os.environ.get("IMAGEFORGE_SCREENSHOT_DIR"):
        browser.save_screenshot(str(Path(os.environ["IMAGEFORGE_SCREENSHOT_DIR"]) / "assistant_panel_phone.png"))
    browser.set_window_size(1400, 1000)

    # A scene card's link opens that scene in the trace viewer, signed in by the same cookie.
    link = browser.find_element("css selector", "#card-2 a.trace-link")
    assert link.get_attribute("href").endswith(f"/traces/{second}#scene-2")
    link.click()
    _wait(lambda: browser.current_url.endswith(f"/traces/{second}#scene-2"), what="the trace page")
    assert browser.find_element("id", "scene-2").is_displayed()
    assert browser.find_element("id", "status").text == "completed"

    browser.back()
    _wait(lambda: _board(browser)["generation"] == second and _idle(browser), what="the panel again")
    # Signed out (the cookie gone or expired): the page says so and links to the sign-in form.
    browser.delete_cookie(SESSION_COOKIE)
    _say(browser, "how is it going?")
    _wait(lambda: _idle(browser), what="the refused send")
    assert browser.find_elements("css selector", "#messages li.error")[-1].text.startswith("You are signed out")
    sign_in = browser.find_element("css selector", "#banner a")
    assert sign_in.get_attribute("href").endswith("/login?next=%2Fassistant%3Fconversation%3D" + conversation)

    # With the server gone, the page says so instead of failing silently.
    server.stop()
    _say(browser, "how is it going?")
    _wait(lambda: _idle(browser), what="the failed send")
    error = browser.find_elements("css selector", "#messages li.error")[-1].text
    assert error.startswith("Can't reach the ImageForge server")
    assert browser.find_element("id", "banner").is_displayed()


def test_cancel_from_the_page_stops_the_running_storyboard(server: Server, browser) -> None:
    _sign_in(browser, server, "cancel@example.com")
    _say(browser, "make a storyboard about rain on a tin roof with 3 scenes")
    generation = _wait(lambda: _board(browser)["generation"], 30, "the storyboard to start")
    cancel = browser.find_element("id", "cancel")
    _wait(cancel.is_displayed, what="the cancel button")
    _wait(lambda: _idle(browser), what="the reply")
    cancel.click()
    _wait(lambda: _board(browser)["status"] == "cancelled", 120, "the storyboard to be cancelled")
    notes = browser.find_elements("css selector", "#messages li.note")
    assert notes and notes[-1].text.startswith(f"Cancel storyboard {generation}:")
    assert "Cancelled." in browser.find_element("id", "board").text
    assert not browser.find_element("id", "cancel").is_displayed()
    assert any(not _finished(c) for c in _board(browser)["cards"])  # it stopped before the end
