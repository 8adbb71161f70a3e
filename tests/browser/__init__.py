"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` via Playwright.

Never ``playwright install``: it downloads a browser and fails offline. A
browser that cannot start fails the test (no skip), so a broken set-up is
noticed instead of silently testing less.
"""

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: Screenshots land here (git-ignored, at the repository root).
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def launch_chromium(playwright):
    """A headless Chromium, or a test failure that says why it could not start."""
    try:
        return playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
    except Exception as exc:
        pytest.fail(
            f"Chromium could not start from {CHROMIUM} ({type(exc).__name__}: {exc}). "
            "Install Debian's chromium package; do not run `playwright install`.",
            pytrace=False,
        )


def screenshot(page, name):
    """Save a full-page PNG under ``artifacts/`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    page.screenshot(path=str(target), full_page=True)
    return target
