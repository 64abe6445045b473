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


def test_sparse_page_views_offline(browser_page):
    bp = browser_page
    page = bp.page
    bp.open("/sparse")
    expect(_title(page, r"^Every head: strided")).to_have_count(1)
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

    _view(bp, "Live model")
    expect(_title(page, r"^Share of each head")).to_have_count(1)
    expect(_title(page, r"^Enforced: layer 0, head 0")).to_have_count(1)
    expect(page.get_by_text("has no masked-LM head")).to_have_count(1)
    bp.assert_healthy()
    bp.screenshot("sparse_live")

    _view(bp, "Cost")
    expect(_title(page, r"^Dense vs masked attention")).to_have_count(1)
    expect(page.get_by_text("saves nothing", exact=False)).to_have_count(1)
    bp.assert_healthy()
    bp.screenshot("sparse_cost")
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"

    shared = page.url.replace("view=Cost", "view=Reachability")
    page.goto("about:blank")
    page.goto(shared)
    bp.wait_idle()
    expect(_title(page, r"^Query 61 receives key 3")).to_have_count(1)


def test_a_4096_position_bigbird_mask_draws_as_an_image(browser_page):
    bp = browser_page
    bp.open("/sparse?pattern=BigBird&b=64&random_blocks=3&n=4096")
    expect(_title(bp.page, r"^Every head: bigbird .* n = 4096")).to_have_count(1)
    expect(bp.page.locator(f"{CHART} image")).to_have_count(1)
    bp.assert_healthy()
    bp.screenshot("sparse_bigbird_4096")
