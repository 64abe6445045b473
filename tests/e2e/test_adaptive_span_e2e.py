"""The Adaptive attention span page in Chromium, offline: the formula, a slider, a saved run,
and a (tiny) training run started from the page."""
import re

from playwright.sync_api import expect

from models.span.corpus import generate_corpus
from models.span.lm import SpanLMConfig, SpanTrainConfig, train_span_lm
from models.span.runs import save_run
from tests.e2e.browser import chart_titles

CHART = '[data-testid="stPlotlyChart"]'
TINY_TRAINING = "train_layers=1&train_heads=1&train_S=32&train_steps=20"


def _open(bp, query: str = "") -> None:
    # a fresh server runs pages as a v1 multipage app (no sidebar) until app.py has run once
    bp.open("/")
    expect(bp.page.get_by_label("Text", exact=True)).to_be_visible()
    bp.open("/adaptive_span" + query)


def _save_tiny_run(data_dir, monkeypatch) -> str:
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(data_dir))  # the server's data folder
    config = SpanLMConfig(n_layers=2, n_heads=2, d_model=16, max_span=16, ramp=4, init_fraction=0.5)
    run = train_span_lm(generate_corpus(100), config, SpanTrainConfig(steps=12, batch_size=4, log_every=4),
                source="generated corpus")
    return save_run(run, "e2e-saved-run")


def test_span_page_draws_offline_follows_a_slider_and_opens_a_saved_run(browser_page, data_dir, monkeypatch):
    _save_tiny_run(data_dir, monkeypatch)
    bp = browser_page
    _open(bp)
    page = bp.page
    expect(page.locator(".katex").first).to_be_visible()  # the formula, rendered offline
    expect(chart_titles(page, "Soft span mask, S = 32, R = 4")).to_be_visible()
    expect(chart_titles(page, "Before: layer 0, head 0")).to_be_visible()
    expect(page.locator(f"{CHART} .hm")).not_to_have_count(0)  # the heatmaps are drawn
    expect(chart_titles(page, "Learned spans, 2 layers × 2 heads")).to_be_visible()
    expect(page.get_by_text("trained on the generated corpus · 12 steps")).to_be_visible()
    bp.assert_healthy()
    bp.screenshot("adaptive_span_default")

    thumb = page.get_by_role("slider", name="z: span (tokens)")
    thumb.focus()
    for _ in range(4):
        thumb.press("ArrowRight")
    bp.wait_idle()
    expect(chart_titles(page, "After the span mask (z = 10, R = 4)")).to_be_visible()
    assert "span_z=10" in page.url
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"


def test_training_from_the_page_shows_progress_and_opens_the_new_run(browser_page, data_dir, monkeypatch):
    _save_tiny_run(data_dir, monkeypatch)
    bp = browser_page
    _open(bp, f"?{TINY_TRAINING}")
    page = bp.page
    page.get_by_text("Train a new run").click()
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile(r"Trained in \d+ s and saved as"))).to_be_visible()
    expect(page.locator('[data-testid="stProgress"]')).to_contain_text("Step 20 of 20")  # the bar stays
    bp.wait_idle()
    expect(chart_titles(page, "Learned spans, 1 layer × 1 head")).to_be_visible()
    expect(page.get_by_text("trained on the generated corpus · 20 steps")).to_be_visible()  # the new run is open
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.screenshot("adaptive_span_trained")
