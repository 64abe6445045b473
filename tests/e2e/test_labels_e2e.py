"""Token and word labels in Chromium, offline: byte-level BPE pieces shown as the text's characters."""
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import expect

CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'  # not the old copy a rerun is replacing
TEXT = "Seán likes 😀 a lot"


def test_byte_level_words_show_the_texts_characters(browser_page, tiny_models):
    bp = browser_page
    bp.open(f"/?model={quote(str(tiny_models['gpt2']))}&text={quote(TEXT)}&words=true")
    page = bp.page
    ticks = page.locator(f"{CHART} .ytick text")
    for label in ("0 Seán", "1 likes", "2 😀", "3 a", "4 lot"):
        expect(ticks.filter(has_text=label).first).to_be_attached()
    assert ticks.filter(has_text="Ã").count() == 0 and ticks.filter(has_text="ð").count() == 0
    focused = page.locator(CHART).filter(has_text="Layer 0, head 0").first
    focused.scroll_into_view_if_needed()
    cell = focused.locator(".nsewdrag").first.bounding_box()  # hover the first query's first key
    page.mouse.move(cell["x"] + cell["width"] / 10, cell["y"] + cell["height"] / 10)
    expect(focused.locator(".hoverlayer .hovertext").first).to_contain_text("Seán")
    with page.expect_download() as download:
        page.get_by_role("button", name="This matrix as CSV").click()
    header = Path(download.value.path()).read_text(encoding="utf-8").splitlines()[0]
    assert header == "query \\ key,0 Seán,1 likes,2 😀,3 a,4 lot"
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.screenshot("heads_words_byte_level")


def test_quotes_ampersands_and_markup_show_as_typed(browser_page):
    bp = browser_page
    bp.open("/?text=" + quote("""He said "hi" & left <b>now</b> O'Neil"""))
    ticks = bp.page.locator(f"{CHART} .ytick text")
    for label in ('3 "', '5 "', "6 &", "8 <", "10 >", "11 now", "17 '"):
        expect(ticks.filter(has_text=label).first).to_be_attached()
    assert ticks.filter(has_text="&quot;").count() == 0 and ticks.filter(has_text="&#").count() == 0
    assert bp.page.locator(f"{CHART} b").count() == 0  # <b> is text, not bold
    bp.assert_healthy()
    bp.screenshot("heads_quotes_and_markup")
