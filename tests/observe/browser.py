"""Headless Debian Chromium driven by Selenium through Debian's chromedriver; never downloads a browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
INSTALL_HINT = "apt-get install -y chromium chromium-driver && .venv/bin/pip install selenium"


def missing() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    if shutil.which("chromium") is None:
        return f"no chromium on PATH ({INSTALL_HINT})"
    if shutil.which("chromedriver") is None:
        return f"no chromedriver on PATH ({INSTALL_HINT})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed ({INSTALL_HINT})"
    return ""


@contextmanager
def headless_chromium(profile: Path) -> Iterator[Any]:
    """A WebDriver on a fresh profile; skips the calling test with the reason when there is no browser."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for browsers on the network
    options = Options()
    options.binary_location = str(shutil.which("chromium"))
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=options)
    try:
        yield driver
    finally:
        driver.quit()
