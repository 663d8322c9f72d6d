"""A real browser for the end-to-end tests: Playwright driving Debian's Chromium.

``playwright install`` cannot download browsers here, so the helper launches the
system Chromium (``apt-get install chromium``; the Makefile's ``system-deps``).
A missing browser is an error, never a skip: CI installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("ESIGN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 20_000


def chromium_path() -> str:
    """The Chromium executable; raises (so the test fails) when it is not installed."""
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM!r}: install Debian's chromium package "
            "(make system-deps) or set ESIGN_CHROMIUM."
        )
    return path


@contextmanager
def launch_chromium(*, headless: bool = True) -> Iterator:
    """Start Playwright and the system Chromium; yields the ``Browser``."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_ARGS), headless=headless
        )
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser, **kw):
    """A fresh, cookie-less browser context: 1280×900, Swedish, with short timeouts."""
    options = {"viewport": VIEWPORT, "locale": "sv-SE", "accept_downloads": True, **kw}
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


class Screenshots:
    """Screenshots into one folder; name them ``NN-step`` so they sort in journey order."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def __call__(self, page, name: str, *, full_page: bool = False) -> Path:
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        return path
