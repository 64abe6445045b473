"""The Dot-product scaling page in Chromium, offline: every figure draws, controls reach the URL."""
from playwright.sync_api import expect

from models.scaling.random_vectors import classic_demonstration

CHART = '[data-testid="stPlotlyChart"]'
TITLES = ("random pairs q, k", "Mean |q·k| grows", "One random query against", "softmax(q·k / t)",
          "minilm, self-attention, layer 0, head 0", "Neuron view")


def _title(page, start: str):
    return page.locator(f"{CHART} .gtitle").filter(has_text=start)


def _metric(page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).locator('[data-testid="stMetricValue"]')


def test_scaling_page_draws_offline_and_shares_its_controls(browser_page):
    bp = browser_page
    page = bp.page
    bp.open("/scaling?samples=200")
    for start in TITLES:
        expect(_title(page, start)).to_have_count(1)
    expect(_metric(page, "d = 10000")).to_have_text(f"{classic_demonstration(0).sampled[1]:.2f}")  # about 80
    expect(page.get_by_text("d_head = 32: the model multiplies q·k by 1/√32")).to_be_visible()
    bp.assert_healthy()
    bp.screenshot("scaling_default")

    seed = page.get_by_label("Seed", exact=True)
    seed.fill("3")
    seed.press("Enter")
    bp.wait_idle()
    expect(_metric(page, "d = 10000")).to_have_text(f"{classic_demonstration(3).sampled[1]:.2f}")
    assert "seed=3" in page.url

    layer = page.locator('[data-testid="stSlider"]').filter(has_text="Layer").get_by_role("slider")
    layer.focus()
    layer.press("ArrowRight")
    bp.wait_idle()
    expect(_title(page, "minilm, self-attention, layer 1, head 0")).to_have_count(1)
    assert "scores_layer=1" in page.url

    bp.open("/scaling?d=10000&samples=100&scores_layer=2&scores_head=5&neuron_query=3")
    expect(_title(page, "100 random pairs q, k with d = 10000")).to_have_count(1)
    expect(_title(page, "Neuron view: query 3")).to_have_count(1)
    expect(_title(page, "minilm, self-attention, layer 2, head 5")).to_have_count(1)
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.screenshot("scaling_d10000_layer2_head5")
