"""The Checkpoints page in Chromium, offline: a tiny series side by side, a text without a mask,
a click on a head, and the shared link."""
import re
from urllib.parse import urlencode

from playwright.sync_api import expect

from models import load_model
from models.core.predictions import fill_mask
from tests.tiny_models import save_tiny_mlm_series

CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'  # not the old copy a rerun is replacing
TEXT_LABEL = "Text with one or more masks"


def _chart(page, title: str):
    return page.locator(CHART).filter(has=page.locator(".gtitle", has_text=title))


def _type(bp, text: str) -> None:
    box = bp.page.get_by_label(TEXT_LABEL, exact=True)
    box.fill(text)
    box.press("Enter")
    bp.wait_idle()


def test_checkpoints_page_shows_a_series_offline_and_keeps_bad_text(browser_page, data_dir):
    folder = data_dir / "checkpoints_series"  # its own folder: the demo series may belong to another test
    if not folder.exists():
        save_tiny_mlm_series(folder)
    final = fill_mask(load_model(str(folder / "checkpoint-1000")), "The capital of [MASK] is Rome.").masks[0]
    bp = browser_page
    bp.open("/checkpoints?" + urlencode({"ckpt_source": "folder", "ckpt_folder": str(folder)}))
    page = bp.page
    table = page.locator("table").filter(has=page.locator("th", has_text="rank"))
    expect(table.locator("thead th")).to_have_text(["rank", "step 10", "step 100", "step 1,000"])
    top = final.top[0]
    last_column = table.locator("tbody tr").first.locator("td").last  # the token over its probability
    expect(last_column).to_have_text(re.compile(rf"^{re.escape(top.token)}\s*{re.escape(f'{top.probability:.1%}')}$"))
    probability = _chart(page, "Probability of each candidate at mask 1")
    expect(probability.locator(".legendtext").first).to_have_text(final.top[0].token)
    expect(_chart(page, "Training loss, with the checkpoints marked")).to_have_count(1)
    expect(_chart(page, "step 1,000: layer 0, head 0")).to_have_count(1)
    bp.assert_healthy()
    bp.screenshot("checkpoints_series")

    _type(bp, "The capital of Italy is Rome.")
    expect(page.get_by_text("The text has no [MASK]")).to_be_visible()
    expect(page.get_by_label(TEXT_LABEL, exact=True)).to_have_value("The capital of Italy is Rome.")
    expect(page.locator("table")).to_have_count(0)
    bp.assert_healthy()
    bp.screenshot("checkpoints_no_mask")

    _type(bp, "[MASK] is the capital of Italy.")
    overview = _chart(page, "step 10: all heads")
    overview.scroll_into_view_if_needed()  # far down the page: a click must land inside the viewport
    point = overview.locator(".scatterlayer path.point").nth(1 * 4 + 2)  # layer 1, head 2
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    bp.wait_idle()
    expect(_chart(page, "step 10: layer 1, head 2")).to_have_count(1)
    expect(_chart(page, "step 1,000: layer 1, head 2")).to_have_count(1)
    assert re.search(r"ckpt_layer=1\b", page.url) and re.search(r"ckpt_head=2\b", page.url)
    assert "ckpt_text=%5BMASK%5D" in page.url or "ckpt_text=[MASK]" in page.url
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"

    shared = page.url
    page.goto("about:blank")
    page.goto(shared)
    bp.wait_idle()
    expect(_chart(page, "step 10: layer 1, head 2")).to_have_count(1)
    expect(page.get_by_label(TEXT_LABEL, exact=True)).to_have_value("[MASK] is the capital of Italy.")


def test_hub_ids_offline_are_named_within_seconds(browser_page):
    bp = browser_page
    bp.open("/checkpoints?ckpt_source=hub+ids")
    bp.page.get_by_role("button", name="MultiBERTs preset").click()
    bp.wait_idle()
    warning = bp.page.locator('[data-testid="stAlertContentWarning"]')
    expect(warning).to_contain_text("29 of 29 checkpoints can't be shown")
    expect(warning).to_contain_text("google/multiberts-seed_0-step_2000k")
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.screenshot("checkpoints_hub_offline")
