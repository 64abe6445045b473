"""The app frame in Chromium: deep links on a fresh server, every page listed and healthy."""
from playwright.sync_api import expect

from tests.e2e.browser import BrowserPage
from tests.helpers import streamlit_server


def test_a_deep_link_is_the_first_request_of_a_fresh_server(browser, data_dir):
    """A lecturer starts the server and opens a prepared link to a page that isn't the default."""
    with streamlit_server(data_dir) as url:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        bp = BrowserPage(context.new_page(), url)
        bp.open("/sparse?text=Prepared+before+the+lecture")
        expect(bp.page.get_by_label("Text", exact=True)).to_have_value("Prepared before the lecture")
        expect(bp.page.get_by_role("heading", name="Sparse attention patterns")).to_be_visible()
        expect(bp.page.locator('[data-testid="stSidebarNav"]')).not_to_contain_text("shared")
        bp.assert_healthy()
        context.close()
