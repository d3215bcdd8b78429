"""Headless Chromium for the browser tests: Debian's package, driven by Playwright's python API.

Playwright's own browser download needs the internet; the Debian package does not. The machine is
offline, so the flags also stop Chromium's background calls to Google, which would only fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(user_agent: str | None = None) -> Iterator[Browser]:
    """A launched browser, closed on exit; use it as the body of a pytest fixture.

    A user agent given here (not per context) also covers beacons sent while a page unloads,
    which Chromium sends from its browser process with the launch-time user agent.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS + ([f"--user-agent={user_agent}"] if user_agent else []),
            headless=True,
        )
        try:
            yield browser
        finally:
            browser.close()
