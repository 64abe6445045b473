"""The app frame in Chromium on a freshly started server: its own page list from the first paint,
deep links, every page listed and healthy."""
import json
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.browser import BrowserPage
from tests.helpers import streamlit_server

ROOT = Path(__file__).resolve().parents[2]
TITLES = ["Attention heads", "Heads at work", "Dot-product scaling", "Sparse attention", "Compare",
          "Adaptive attention span", "Checkpoints: masked-LM predictions"]
# From the first script of the document on, every change of the page list (Streamlit's own, or the
# app's page links) is recorded with the page's headings and any "page not found" dialog.
RECORD_NAVIGATION = """
window.__navigation = [];
const label = link => {
  const copy = link.cloneNode(true);
  copy.querySelectorAll('[data-testid="stIconMaterial"], [data-testid="stIconEmoji"]').forEach(i => i.remove());
  return copy.textContent.trim();
};
const record = () => {
  const links = document.querySelectorAll('[data-testid="stSidebarNav"] a, [data-testid="stSidebarNavLink"], '
                                          + '[data-testid="stTopNavLink"], [data-testid="stPageLink-NavLink"]');
  const seen = JSON.stringify({links: [...new Set([...links].map(label))],
                               headings: [...document.querySelectorAll('h1')].map(h => h.textContent.trim()),
                               dialog: document.querySelector('[role="dialog"]')?.textContent || ''});
  const log = window.__navigation;
  if (!log.length || log[log.length - 1] !== seen) log.push(seen);
};
new MutationObserver(record).observe(document, {subtree: true, childList: true, characterData: true});
"""


def _recorded(bp: BrowserPage) -> list[dict]:
    return [json.loads(seen) for seen in bp.page.evaluate("window.__navigation")]


def _open_recording(browser, url: str, path: str) -> BrowserPage:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.add_init_script(RECORD_NAVIGATION)
    bp = BrowserPage(context.new_page(), url)
    bp.open(path)
    return bp


def test_the_first_paint_of_a_fresh_server_lists_the_apps_own_pages(browser, data_dir):
    """Until app.py has called st.navigation, a fresh Streamlit server takes the pages/ folder beside
    it for an old-style multipage app and lists every file in it ("shared", "widgets", ...)."""
    helpers = [path.stem.strip("_").replace("_", " ") for path in (ROOT / "pages").glob("*.py")] + ["app"]
    with streamlit_server(data_dir) as url:
        bp = _open_recording(browser, url, "/")
        expect(bp.page.get_by_role("heading", name="Attention heads")).to_be_visible()
        expect(bp.page.locator('[data-testid="stSidebar"]').get_by_role("link", name=TITLES[-1])).to_be_visible()
        recorded = _recorded(bp)
        lists = [seen["links"] for seen in recorded if seen["links"]]
        bp.set_text("Text", "Kept across pages.")
        bp.page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Sparse attention").click()
        expect(bp.page.get_by_role("heading", name="Sparse attention patterns")).to_be_visible()
        expect(bp.page.get_by_label("Text", exact=True)).to_have_value("Kept across pages.")
        assert "/sparse" in bp.page.url
        bp.assert_healthy()
        bp.page.context.close()
    assert lists, f"no page list was ever drawn: {recorded}"
    assert all(links == TITLES for links in lists), lists  # the first list drawn is already the app's own
    assert not {name for links in lists for name in links} & set(helpers)


def test_a_deep_link_is_the_first_request_of_a_fresh_server(browser, data_dir):
    """A lecturer starts the server and opens a prepared link to a page that isn't the default."""
    with streamlit_server(data_dir) as url:
        bp = _open_recording(browser, url, "/sparse?text=Prepared+before+the+lecture")
        expect(bp.page.get_by_label("Text", exact=True)).to_have_value("Prepared before the lecture")
        expect(bp.page.get_by_role("heading", name="Sparse attention patterns")).to_be_visible()
        expect(bp.page.locator('[data-testid="stSidebar"]')).not_to_contain_text("shared")
        expect(bp.page.locator('[data-testid="stSidebar"]').get_by_role("link", name=TITLES[-1])).to_be_visible()
        bp.assert_healthy()
        recorded = _recorded(bp)
        bp.page.context.close()
    assert all(seen["links"] in ([], TITLES) for seen in recorded) and recorded[-1]["links"] == TITLES, recorded
    assert not any(seen["dialog"] for seen in recorded), recorded  # no "page not found" on the way
    assert {heading for seen in recorded for heading in seen["headings"]} == {"Sparse attention patterns"}


def test_a_class_opening_every_page_at_once_on_a_fresh_server(browser, data_dir):
    """Each session runs app.py in its own thread: on a fresh server they all import models and
    pages at once, and an import half done in one thread must never be seen by another."""
    paths = ["/", "/heads_at_work", "/scaling", "/sparse", "/compare", "/adaptive_span", "/checkpoints"]
    with streamlit_server(data_dir) as url:
        contexts = [browser.new_context(viewport={"width": 1440, "height": 1000}) for _ in paths]
        pages = [BrowserPage(context.new_page(), url) for context in contexts]
        for bp, path in zip(pages, paths):
            bp.page.goto(f"{url}{path}", wait_until="commit")  # every tab asks before any page is drawn
        for bp in pages:
            bp.wait_idle()
            expect(bp.page.locator('[data-testid="stSidebar"]').get_by_role("link", name=TITLES[-1])).to_be_visible()
            bp.assert_healthy()
        for context in contexts:
            context.close()
