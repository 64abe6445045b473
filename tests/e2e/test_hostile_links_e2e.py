"""Hostile links: script payloads in the text and in every URL parameter of every page must be
shown as text, never run (main page, tooltips, tables, bertviz iframes)."""
import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.helpers import ROOT

MARK = "window.top.__pwned = (window.top.__pwned || 0) + 1"
PAYLOADS = [
    f'"><img src=x onerror="{MARK}"><script>{MARK}</script>',
    f"javascript:{MARK}//",
    f"</textarea><svg onload=\"{MARK}\"></svg>[MASK] <s> [SEP]",
]


def url_keys() -> list[str]:
    """Every URL key any page binds: the string values of its *_KEY constants."""
    keys = set()
    for source in [ROOT / "app.py", *ROOT.glob("pages/*.py"), ROOT / "viz" / "theme.py"]:
        for names, values in re.findall(r"^([A-Z_, ]*KEY[A-Z_, ]*)=\s*(.+)$", source.read_text(), re.M):
            keys.update(re.findall(r'"([a-z_]+)"', values))
    return sorted(keys)


def page_paths() -> list[str]:
    """The URL path of every page app.py lists; the first, the default page, is at /."""
    app = (ROOT / "app.py").read_text()
    return ["" if i == 0 else p for i, p in enumerate(re.findall(r'st\.Page\(\w+\.render,.*?url_path="(\w+)"', app, re.S))]


@pytest.mark.parametrize("path", page_paths())
def test_payloads_in_every_parameter_never_run(browser_page, path):
    bp, page = browser_page, browser_page.page
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for payload in PAYLOADS:
        query = {key: payload for key in url_keys()}
        query.update(bertviz="head view", lecture="false")  # the bertviz iframe renders the tokens
        bp.open(f"/{path}?{urlencode(query)}")
        expect(page.get_by_label("Text", exact=True)).to_have_value(payload)  # shown as text, the app alive
        assert page.evaluate("window.__pwned || 0") == 0, f"a payload ran on /{path}"
        assert not dialogs, dialogs
        assert page.locator('[data-testid="stException"]').count() == 0
        assert not bp.errors, bp.errors
    assert len(url_keys()) > 20  # the scan really found the pages' parameters
