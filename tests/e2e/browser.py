"""A Chromium page on the app, with what a test needs to know about it."""
import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.helpers import ROOT

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
RUN_TIMEOUT_MS = 120_000  # first model load on a busy 2-core machine
CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'  # not the old copy a rerun is replacing


def chart_titles(page: Page, start: str, chart: str = CHART) -> Locator:
    """The titles of the charts (matching `chart`) whose title starts with `start`."""
    return page.locator(f"{chart} .gtitle").filter(has_text=re.compile("^" + re.escape(start)))


class BrowserPage:
    """A page plus what the test needs to know about it: blocked requests, script errors."""

    def __init__(self, page: Page, base_url: str):
        self.page, self.base_url = page, base_url
        self.blocked: list[str] = []
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, path: str = "") -> None:
        self.page.goto(f"{self.base_url}/{path.lstrip('/')}")
        self.wait_idle()

    def wait_idle(self) -> None:
        """Wait until Streamlit has finished running the script (its status widget is gone)."""
        self.page.wait_for_selector('[data-testid="stApp"]', timeout=RUN_TIMEOUT_MS)
        self.page.wait_for_timeout(400)  # a rerun starts a moment after an input event
        expect(self.page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=RUN_TIMEOUT_MS)
        # elements of the previous run linger, marked stale, until the new ones replace them
        expect(self.page.locator('[data-stale="true"]')).to_have_count(0, timeout=RUN_TIMEOUT_MS)
        self.page.wait_for_timeout(300)

    def set_text(self, label: str, text: str) -> None:
        box = self.page.get_by_label(label, exact=True)
        box.fill(text)
        box.press("Control+Enter")
        self.wait_idle()

    def assert_healthy(self) -> None:
        """No exception box, no error alert, no script error in the page."""
        expect(self.page.locator('[data-testid="stException"]')).to_have_count(0)
        expect(self.page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
        assert not self.errors, self.errors

    def assert_healthy_offline(self, screenshot: str) -> None:
        """Healthy, no request that tried to leave the machine, and a screenshot to look at."""
        self.assert_healthy()
        assert not self.blocked, f"the page tried to reach outside: {self.blocked}"
        self.screenshot(screenshot)

    def screenshot(self, name: str) -> Path:
        """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        size = self.page.viewport_size
        height = self.page.evaluate(
            "() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0")
        self.page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 8000)})
        self.page.wait_for_timeout(500)  # plotly redraws on resize
        self.page.screenshot(path=path)
        self.page.set_viewport_size(size)
        return path
