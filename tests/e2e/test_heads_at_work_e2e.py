"""The Heads at work page and the Compare page's compressed model B in Chromium, offline: a link with off=
opens with those heads off, a click on a thumbnail switches a head off (and on again) and the loss moves,
SmolLM2's " Paris" after pruning and int8 quantization."""
import re
from urllib.parse import urlencode

from playwright.sync_api import expect

CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'  # not the old copy a rerun is replacing
FIRST_LOAD_MS = 600_000  # SmolLM2's GGUF is converted once per test session, on a busy machine
PROMPT = "The capital of France is"


def _chart(page, title: str):
    return page.locator(CHART).filter(has=page.locator(".gtitle", has_text=title))


def _metric(page, label: str):
    """The value of the metric whose label starts with `label`."""
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile("^" + re.escape(label))))
    return metric.locator('[data-testid="stMetricValue"]')


def _click_head(bp, layer: int, head: int, heads: int) -> None:
    point = _chart(bp.page, "All heads").locator(".scatterlayer path.point").nth(layer * heads + head)
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    bp.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    bp.wait_idle()


def test_a_link_with_heads_off_opens_with_them_off(browser_page, tiny_models):
    bp, page = browser_page, browser_page.page
    bp.open("/heads_at_work?" + urlencode(dict(model=tiny_models["llama"], text="The cat sat on the mat.",
                                               off="1.2,1.0")))
    expect(_metric(page, "Mean loss on the text, 2 heads off")).to_be_visible()
    grid = _chart(page, "All heads")
    expect(grid.locator(".shapelayer path")).to_have_count(1 + 2 * 5)  # the focus outline; per head a veil, a cross
    expect(_chart(page, "Loss per token").locator(".legendtext", has_text="2 heads off")).to_be_visible()
    expect(page.get_by_label("Heads switched off", exact=True)).to_have_value(re.compile(r"^1\.(2,1\.0|0,1\.2)$"))
    bp.assert_healthy_offline("heads_at_work_link")


def test_smollm2_a_click_switches_a_head_off_and_the_loss_moves(browser_page):
    bp, page = browser_page, browser_page.page
    bp.open("/heads_at_work?" + urlencode(dict(model="smollm2", text=PROMPT)))
    intact = _metric(page, "Mean loss on the text, intact")
    expect(intact).to_be_visible(timeout=FIRST_LOAD_MS)
    expect(page.get_by_text("No head is switched off")).to_be_visible()
    expect(_metric(page, "“Paris” (next token)")).to_have_text(re.compile(r"^77\.\d% → 77\.\d%$"))
    before = intact.inner_text()
    bp.assert_healthy_offline("heads_at_work_smollm2_intact")

    _click_head(bp, 1, 4, heads=9)  # layer 1, head 4: " Paris" loses about a fifth of its probability
    changed = _metric(page, "Mean loss on the text, 1 head off")
    expect(changed).to_be_visible()
    assert "off=1.4" in page.url
    assert changed.inner_text() != before
    expect(_metric(page, "“Paris” (next token): intact → 1 head off")).not_to_have_text(re.compile(r"→ 77\."))
    expect(_chart(page, "All heads").locator(".shapelayer path")).to_have_count(1 + 5)
    bp.assert_healthy_offline("heads_at_work_smollm2_head_off")

    _click_head(bp, 1, 4, heads=9)  # the same head again: on again
    expect(page.get_by_text("No head is switched off")).to_be_visible()
    assert "off=" not in page.url


def test_smollm2_compressed_as_model_b(browser_page):
    bp, page = browser_page, browser_page.page
    # goto, not open: pruning a copy of the model may take minutes on a busy machine, past open()'s wait
    page.goto(f"{bp.base_url}/compare?" + urlencode({"model": "smollm2", "text": PROMPT, "model_b": "A, L1-pruned"}))
    paris = _metric(page, "“Paris” (next token): A → B")
    expect(paris).to_have_text(re.compile(r"^77\.\d% → 2\d\.\d%$"), timeout=FIRST_LOAD_MS)  # 0.77 -> 0.26
    bp.wait_idle()
    expect(_metric(page, "Parameters that are 0")).to_have_text(re.compile(r"→ 20\.0%$"))
    expect(_chart(page, "JS divergence of A")).to_be_visible()
    bp.assert_healthy_offline("compare_smollm2_pruned")

    page.goto(f"{bp.base_url}/compare?" + urlencode({"model": "smollm2", "text": PROMPT,
                                                     "model_b": "A, int8 (torchao)"}))
    expect(page.get_by_text("Int8DynamicActivationInt8WeightConfig")).to_be_visible(timeout=FIRST_LOAD_MS)
    bp.wait_idle()
    expect(paris).to_have_text(re.compile(r"^77\.\d% → [78]\d\.\d%$"))  # int8 keeps the answer
    expect(_chart(page, "JS divergence of A")).to_be_visible()
    expect(page.get_by_text("CUDA")).to_have_count(0)  # torchao's kernel noise stays off the page
    bp.assert_healthy_offline("compare_smollm2_int8")
