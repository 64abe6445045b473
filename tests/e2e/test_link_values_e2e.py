"""Every page opened from a link whose values its controls don't offer (layer 99, head -1,
n = 10^9, options that don't exist): in a real browser the page draws, names each refused
value in a warning, and nothing breaks."""
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

TEXT = "The cat sat on the mat."
CASES = {
    "scaling": dict(d="7", samples="1000000000", seed="-5", keys="3", temperature="-1", scores_layer="99",
                    scores_head="-1", neuron_query="1000000000"),
    "sparse": dict(n="1000000000", pattern="Nonsense", l="0", combine="everything", view="Tea"),
    "adaptive_span": dict(span_S="1000000000", span_z="-1", span_R="0", span_layer="99", span_head="-1"),
    # their layer and head controls draw once two models or a series are there: tests/app checks those
    "compare": dict(compare_view="Nonsense"),
    "checkpoints": dict(ckpt_source="ftp"),
}


@pytest.mark.parametrize("path", CASES)
def test_refused_link_values_are_named_on_every_page(browser_page, path):
    bp, page = browser_page, browser_page.page
    bad = CASES[path]
    bp.open(f"/{path}?{urlencode(dict(text=TEXT, **bad))}")
    expect(page.get_by_label("Text", exact=True)).to_have_value(TEXT)  # the app frame is up (fresh server)
    bp.wait_idle()
    warnings = page.locator('[data-testid="stAlertContentWarning"]')
    expect(warnings.first).to_be_visible()
    said = " | ".join(warnings.all_inner_texts())
    for key, raw in bad.items():
        assert f"'{raw}'" in said, f"/{path}: nothing says why {key}={raw} isn't shown: {said}"
    bp.assert_healthy()
    bp.screenshot(f"link_values_{path}")
