"""Headless Chromium (Debian's, driven by Playwright) for the UI's tests."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("GRAPHLETS_CHROMIUM", "/usr/bin/chromium")
# The flags this machine's closed network needs (no background calls home), as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch(playwright):
    """A headless Chromium, or a clear failure naming the fix when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"No Chromium at {CHROMIUM}: run `make browser` (installs Debian's chromium).")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
