"""The Heads page in Chromium, offline: draw, retype, click a head, share the link."""
import re
from urllib.parse import urlencode

from playwright.sync_api import expect

CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'  # not the old copy a rerun is replacing


def _focused_title(page):
    return page.locator(f"{CHART} .gtitle").filter(has_text=re.compile(r"^Layer \d"))


def test_heads_page_draws_offline_and_follows_text_and_clicks(browser_page):
    bp = browser_page
    bp.open("/")
    page = bp.page
    expect(page.locator(f"{CHART} .hm").first).to_be_visible()  # heatmaps are drawn
    expect(page.locator(f"{CHART} image")).not_to_have_count(0)  # overview thumbnails
    expect(_focused_title(page)).to_have_text("Layer 0, head 0 (self-attention)")
    bp.assert_healthy()
    bp.screenshot("heads_default")

    bp.set_text("Text", "Birds fly south in winter.")
    expect(page.locator(f"{CHART} .ytick text").filter(has_text="winter").first).to_be_visible()

    point = page.locator(f"{CHART} .scatterlayer path.point").nth(2 * 12 + 5)  # layer 2, head 5
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    bp.wait_idle()
    expect(_focused_title(page)).to_have_text("Layer 2, head 5 (self-attention)")
    assert "layer=2" in page.url and "head=5" in page.url and "text=Birds" in page.url
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.screenshot("heads_clicked")

    shared = page.url
    page.goto("about:blank")
    page.goto(shared)
    bp.wait_idle()
    expect(_focused_title(page)).to_have_text("Layer 2, head 5 (self-attention)")
    expect(page.get_by_label("Text", exact=True)).to_have_value("Birds fly south in winter.")


def test_hostile_text_is_shown_not_run(browser_page):
    bp = browser_page
    payload = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    bp.open("/?text=" + payload.replace("#", "%23").replace("&", "%26"))
    page = bp.page
    expect(page.locator(f"{CHART} .hm").first).to_be_visible()
    assert page.title() != "pwned"
    assert page.locator(f"{CHART} .ytick text").filter(has_text="<").count() > 0  # shown as text
    bp.assert_healthy()


def test_a_model_with_one_layer_of_one_head(browser_page, tiny_1x1):
    """Its layer and head have one possible value each: shown as text, since a slider needs two."""
    bp, page = browser_page, browser_page.page
    bp.open("/?" + urlencode(dict(model=str(tiny_1x1), layer="5", statistics="true")))
    expect(_focused_title(page)).to_have_text("Layer 0, head 0 (self-attention)")
    expect(page.get_by_text("Layer: 0, the only one", exact=True)).to_be_visible()
    expect(page.get_by_text("Head: 0, the only one", exact=True)).to_be_visible()
    sliders = page.locator('[data-testid="stSlider"]')
    expect(sliders.filter(has_text="Layer")).to_have_count(0)
    expect(sliders.filter(has_text="Head")).to_have_count(0)
    expect(page.get_by_text("The link asks for layer '5', but this model has layer 0 only")).to_be_visible()
    bp.assert_healthy()
    bp.screenshot("heads_1x1")
