"""Headless Chromium as a person's browser opens a page: Playwright driving
the system's Chromium (Debian's `chromium` package), never a browser of
Playwright's own download. The review page's tests and benchmark use it.
"""

import contextlib
import shutil
from typing import Iterator, List, Optional, Tuple

# No network beyond the package registries on these machines: nothing of
# Chromium's own may try to go out.
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync")


# A load the page itself gave up: it navigated (reload, a new address) or
# re-drew its rows before an image had come. Chromium reports it as a failed
# request, but nothing is missing; a missing file is net::ERR_FILE_NOT_FOUND.
CANCELLED = "net::ERR_ABORTED"


def missing() -> Optional[str]:
    """What is not installed to drive a browser ("chromium", "playwright"), or None."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "chromium"
    try:
        import playwright.sync_api  # noqa: F401  (the `test` extra)
    except ImportError:
        return "playwright"
    return None


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[Tuple[object, List[str]]]:
    """(a new page, the errors it has reported so far): uncaught
    exceptions, console errors and failed requests (a missing image; not
    the loads the page cancelled itself, `CANCELLED`).
    Raises RuntimeError naming what is not installed."""
    absent = missing()
    if absent:
        raise RuntimeError(f"{absent} is not installed (Debian: apt-get install chromium; "
                           "pip install playwright)")
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=list(CHROMIUM_FLAGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height},
                                    accept_downloads=True)
            errors: List[str] = []
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            page.on("console", lambda message: errors.append(f"console: {message.text}")
                    if message.type == "error" else None)
            page.on("requestfailed", lambda request: errors.append(
                f"request failed: {request.url} ({request.failure})")
                if request.failure != CANCELLED else None)
            yield page, errors
        finally:
            browser.close()
