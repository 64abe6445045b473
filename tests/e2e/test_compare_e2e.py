"""The Compare page in Chromium, offline: two checkpoints side by side, a click on the divergence
matrix, the shared link, and the series view."""
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import chart_titles
from tests.tiny_models import save_tiny_series

CHART = '[data-testid="stPlotlyChart"]'
TEXT = "The cat sat on the mat, didn't it?"


@pytest.fixture(scope="module")
def series(data_dir):
    folder = data_dir / "compare_series"  # not the demo series: another page's tests may build that one
    return folder if folder.exists() else save_tiny_series(folder)


def _open(bp, **query) -> None:
    bp.open("/compare?" + urlencode(query))


def _chart(page, title: str):
    return page.locator(CHART).filter(has=page.locator(".gtitle", has_text=title))


def test_two_checkpoints_side_by_side_and_a_click_on_the_divergence_matrix(browser_page, series):
    bp = browser_page
    first, final = series / "checkpoint-10", series / "checkpoint-1000"
    _open(bp, series=series, model_a=first, model_b=final, text=TEXT)
    page = bp.page
    expect(chart_titles(page, "A (checkpoint-10): layer 0, head 0")).to_be_visible()
    expect(chart_titles(page, "B (checkpoint-1000): layer 0, head 0")).to_be_visible()
    expect(chart_titles(page, "B − A")).to_be_visible()
    bp.assert_healthy()

    matrix = _chart(page, "JS divergence of A")
    matrix.scroll_into_view_if_needed()
    matrix.locator(".scatterlayer path.point").nth(1 * 4 + 2).click(force=True)  # layer 1, head 2 (invisible)
    bp.wait_idle()
    expect(chart_titles(page, "A (checkpoint-10): layer 1, head 2")).to_be_visible()
    expect(chart_titles(page, "B (checkpoint-1000): layer 1, head 2")).to_be_visible()
    assert "compare_layer=1" in page.url and "compare_head=2" in page.url
    bp.assert_healthy_offline("compare_checkpoints")

    bp.open("/compare?" + page.url.split("?", 1)[1])  # the shared link, in a fresh session
    expect(chart_titles(page, "A (checkpoint-10): layer 1, head 2")).to_be_visible()


def test_the_sidebar_model_against_a_checkpoint_with_matching(browser_page, series):
    bp = browser_page
    _open(bp, series=series, text=TEXT)  # A: the sidebar's model, B: the series' last checkpoint
    page = bp.page
    expect(chart_titles(page, "A (minilm): layer 0, head 0")).to_be_visible()
    expect(chart_titles(page, "JS divergence of every head of A")).to_be_visible()
    expect(page.get_by_text("head-by-head matrix needs the same shape")).to_be_visible()
    bp.assert_healthy_offline("compare_minilm_vs_checkpoint")


def test_the_series_view_draws_every_head_over_steps(browser_page, series):
    bp = browser_page
    _open(bp, series=series, compare_view="Checkpoint series", text=TEXT)
    page = bp.page
    expect(chart_titles(page, "Entropy (nats) of each head")).to_be_visible()
    expect(chart_titles(page, "JS divergence from the final checkpoint")).to_be_visible()
    expect(_chart(page, "Entropy (nats) of each head").locator(".scatterlayer .trace")).to_have_count(2 * 4)
    bp.assert_healthy_offline("compare_series")
