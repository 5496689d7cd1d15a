"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver), the same
flags everywhere; a test module skips with ``MISSING`` when either binary is absent."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = "headless browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"


def headless_chromium(width: int = 1280, height: int = 2000, *, console_log: bool = False) -> object:
    """A selenium driver (the caller quits it); ``console_log`` keeps the page's console messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver
