"""A real `streamlit run app.py` on a loopback port, driven by Debian's Chromium.

Every page gets a fresh browser context in which any request leaving the loopback is
blocked (and recorded), as in a lecture hall with no network.
"""
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.browser import RUN_TIMEOUT_MS, BrowserPage
from tests.helpers import CHROMIUM_ARGS, streamlit_server

CHROMIUM = os.environ.get("EXPLORER_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
expect.set_options(timeout=RUN_TIMEOUT_MS)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("explorer-data")


@pytest.fixture(scope="session")
def app_url(data_dir) -> str:
    with streamlit_server(data_dir) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=list(CHROMIUM_ARGS),
        )
        yield browser
        browser.close()


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
