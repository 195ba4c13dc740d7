"""The browser tests' page (`pipelines.benchmarks.browser.chromium_page`):
skipped where Chromium or Playwright is not installed, unless
PRISM_REQUIRE_CHROMIUM=1 (CI installs Chromium and sets it), where they fail.
"""

import contextlib
import os

import pytest

from pipelines.benchmarks import browser


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000):
    """`browser.chromium_page`, or the test skipped (failed where required)."""
    absent = browser.missing()
    if absent:
        if os.environ.get("PRISM_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"PRISM_REQUIRE_CHROMIUM=1 but {absent} is not installed")
        pytest.skip(f"{absent} is not installed (apt-get install chromium)")
    with browser.chromium_page(width, height) as opened:
        yield opened
