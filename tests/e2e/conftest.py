"""A real `streamlit run app.py` on a loopback port, driven by Debian's Chromium.

Every page gets a fresh browser context in which any request leaving the loopback is
blocked (and recorded), as in a lecture hall with no network.
"""
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("EXPLORER_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
RUN_TIMEOUT_MS = 120_000  # first model load on a busy 2-core machine
expect.set_options(timeout=RUN_TIMEOUT_MS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("explorer-data")


@contextlib.contextmanager
def streamlit_server(data_dir: Path):
    """A fresh `streamlit run app.py` on a free loopback port, offline; yields its URL."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EXPLORER_DATA_DIR": str(data_dir),
           "EXPLORER_ALLOWED_FOLDERS": tempfile.gettempdir()}  # where tests save tiny models
    log = open(data_dir / f"streamlit-{port}.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        raise RuntimeError(f"streamlit did not start; see {log.name}")
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture(scope="session")
def app_url(data_dir) -> str:
    with streamlit_server(data_dir) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


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


@pytest.fixture
def browser_page(browser, app_url) -> BrowserPage:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(RUN_TIMEOUT_MS)
    wrapped = BrowserPage(page, app_url)

    def offline(route):
        host = urlparse(route.request.url).hostname or ""
        if host in LOOPBACK or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            wrapped.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    yield wrapped
    context.close()
