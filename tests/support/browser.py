"""Headless Chromium (Debian package `chromium`, installed by scripts/system-deps.sh) driven by
playwright, for the tests of the page at `/`; missing parts fail in CI (support/parts.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from support.parts import find, missing

CHROMIUM = find("chromium") or find("chromium-browser")


@contextmanager
def chromium() -> Iterator[object]:
    """A launched browser, closed on exit."""
    if CHROMIUM is None:
        missing("Chromium is not installed: the Debian package `chromium` "
                "(scripts/system-deps.sh installs it when run as root)")
    try:
        from playwright import sync_api
    except ImportError:
        missing("playwright is not installed (a dev extra)")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox cannot start as root (CI containers).
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
