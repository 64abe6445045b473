"""The Sparse attention page in Chromium, offline: every view, a 4096-position mask, a path, a shared link."""
import re

from playwright.sync_api import expect

CHART = '[data-testid="stPlotlyChart"]'


def _title(page, pattern: str):
    return page.locator(f"{CHART} .gtitle").filter(has_text=re.compile(pattern))


def _view(bp, name: str) -> None:
    bp.page.locator('[data-testid="stRadio"] label').filter(has_text=re.compile(f"^{name}$")).click()
    bp.wait_idle()


def _number(bp, label: str, value: int) -> None:
    box = bp.page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    bp.wait_idle()


def _open_fresh(bp, path: str) -> None:
    bp.open(path)
    expect(bp.page.get_by_label("Text", exact=True)).to_be_visible()  # app.py's sidebar, around the page


def test_sparse_page_views_offline(browser_page):
    bp = browser_page
    page = bp.page
    _open_fresh(bp, "/sparse")
    expect(_title(page, r"^strided \(l=8, union, causal\), n = 64")).to_have_count(1)
    expect(page.locator(f"{CHART} image")).to_have_count(1)  # the mask is one image
    expect(page.get_by_text("the paper's set max(0, i−l) … i has l + 1")).to_have_count(1)
    bp.assert_healthy()
    bp.screenshot("sparse_pattern")

    page.locator('[data-testid="stSelectbox"]').filter(has_text="Component").click()
    page.get_by_role("option", name="split").click()
    bp.wait_idle()
    expect(page.locator(f"{CHART} image")).to_have_count(3)  # A1, A2 and their union
    expect(_title(page, r"^One layer \(union of the heads\)")).to_have_count(1)
    bp.screenshot("sparse_split_heads")

    _view(bp, "Growth")
    expect(_title(page, r"grow like n\^1\.5")).to_have_count(1)
    bp.screenshot("sparse_growth")

    _view(bp, "Reachability")
    _number(bp, "Query position i (receives)", 61)
    _number(bp, "Key position j (is received)", 3)
    expect(_title(page, r"^Query 61 receives key 3 after 2 layer")).to_have_count(1)
    assert "view=Reachability" in page.url and "query=61" in page.url and "part=split" in page.url
    bp.assert_healthy()
    bp.screenshot("sparse_reachability")
    shared = page.url

    _view(bp, "Live model")
    expect(_title(page, r"^Share of each head")).to_have_count(1)
    expect(_title(page, r"^Enforced: layer 0, head 0")).to_have_count(1)
    expect(page.get_by_text("has no masked-LM head")).to_have_count(1)
    bp.assert_healthy()
    bp.screenshot("sparse_live")

    _view(bp, "Cost")
    expect(_title(page, r"^Dense vs masked attention")).to_have_count(1)
    expect(page.get_by_text("saves nothing", exact=False)).to_have_count(1)
    bp.wait_idle()  # the measurement is slow: let the rerun finish clearing the previous view
    expect(_title(page, r"^Share of each head")).to_have_count(0)
    bp.assert_healthy()
    bp.screenshot("sparse_cost")
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"

    page.goto("about:blank")
    page.goto(shared)
    bp.wait_idle()
    expect(_title(page, r"^Query 61 receives key 3")).to_have_count(1)


def test_a_4096_position_bigbird_mask_draws_as_an_image(browser_page):
    bp = browser_page
    _open_fresh(bp, "/sparse?pattern=BigBird&b=64&random_blocks=3&n=4096")
    expect(_title(bp.page, r"^bigbird \(.*\), n = 4096")).to_have_count(1)
    expect(bp.page.locator(f"{CHART} image")).to_have_count(1)
    bp.assert_healthy()
    bp.screenshot("sparse_bigbird_4096")
    # a bound selectbox with a format_func puts the label it shows in the URL, not the option
    bp.page.locator('[data-testid="stSelectbox"]').filter(has_text="Pattern").first.click()
    bp.page.get_by_role("option", name="Longformer").click()
    bp.wait_idle()
    assert "pattern=Longformer" in bp.page.url, bp.page.url
