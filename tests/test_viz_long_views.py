"""The Heads page's views of a long text (viz.pooled, viz.text_view, a window of viz.heatmap):
what they draw, and that each stays under 2 MB at 8,192 tokens."""
import numpy as np
import pytest

from models.analysis.numerics import block_pooled, block_size
from models.core.tiles import MAX_WINDOW, OVERVIEW_SIZE
from tests.app.helpers import array
from viz.heatmap import attention_heatmap, masked_future
from viz.labels import axis_labels
from viz.overview import heads_overview, thumbnail_cell, thumbnail_grid
from viz.pooled import colour_limit, future_blocks, pooled_heatmap
from viz.text_view import BEFORE, BEFORE_LINES, first_in_view, leading_spaces, shaded_text
from viz.theme import HIGHLIGHT_COLOR

LONG = 8192
MAX_BYTES = 2 << 20  # what one view may send, whatever the length (issue 19)
PAYLOAD = "<img src=x onerror=alert(1)>"


def test_a_window_is_labelled_and_masked_by_its_own_positions():
    assert axis_labels(["a", "b"], start=100) == ["100 a", "101 b"]
    shown = masked_future(np.ones((2, 3)), first_query=10, first_key=9)  # queries 10, 11; keys 9, 10, 11
    assert np.isnan(shown).tolist() == [[False, False, True], [False, False, False]]
    fig = attention_heatmap(np.ones((2, 3)), ["q", "r"], ["j", "q", "r"], "t", causal=True, first_query=10, first_key=9)
    assert list(fig.data[0].y) == ["10 q", "11 r"] and list(fig.data[0].x) == ["9 j", "10 q", "11 r"]


def test_pooled_heatmap_puts_blocks_at_their_positions_and_greys_the_future():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert future_blocks((3, 4), 4, 3).tolist() == [[False, False, True, True], [False, False, False, True],
                                                     [False, False, False, False]]
    fig = pooled_heatmap(image, 4, 3, "Layer 0", "max weight", causal=True, window=(slice(4, 8), slice(0, 6)))
    heat = fig.data[0]
    assert (heat.x0, heat.dx, heat.y0, heat.dy) == (1.0, 3, 1.5, 4)  # block centres in token positions
    z = np.asarray(heat.z)
    assert np.isnan(z[0, 2]) and z[2, 3] == 11 and "max weight" in heat.hovertemplate
    outline = fig.layout.shapes[0]
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (-0.5, 5.5, 3.5, 7.5)
    assert outline.line.color == HIGHLIGHT_COLOR


def test_an_attention_sink_does_not_set_the_colour_scale():
    z = np.full((100, 100), 0.01)
    z[:, 0] = 0.9  # every query's first key: 1% of the blocks
    z[0, 1] = np.nan
    assert colour_limit(z) == pytest.approx(0.01)
    assert colour_limit(np.zeros((3, 3))) == 1.0 and colour_limit(np.array([[0.0, 0.5]])) == pytest.approx(0.49)


def test_leading_spaces_follow_the_tokenizers_markers():
    assert leading_spaces(["The", "Ġcat", "s", "Ġsat"]) == [False, True, False, True]
    assert leading_spaces(["▁The", "▁cat", "s"]) == [True, True, False]
    assert leading_spaces(["[CLS]", "play", "##ing", "cards"]) == [False, True, False, True]


def test_shaded_text_shades_by_weight_outlines_the_token_and_escapes_everything():
    html = shaded_text(["the", PAYLOAD, "cat"], ["the", "Ġx", "Ġcat"], np.array([0.0, 0.25, 1.0]), 2,
                       f"Where {PAYLOAD} looks")
    assert "<img" not in html and html.count("&lt;img") == 3  # title, token, and among the largest
    spans = html.split("<span")[1:]
    assert 'title="1 · weight 0.2500"' in spans[1] and 'title="2 · weight 1.0000"' in spans[2]
    assert "outline" in spans[2] and "outline" not in spans[0] + spans[1]
    assert "color:#fff" in spans[2] and "color:#111" in spans[0]  # dark shade, light letters
    assert "Largest: “cat” 2 (1.0000) · “&lt;img src=x onerror=alert(1)&gt;” 1 (0.2500) · “the” 0 (0.0000)" in html
    assert spans[0].split("background:")[1].split(";")[0] != spans[2].split("background:")[1].split(";")[0]


def test_a_token_that_is_only_a_space_or_a_line_break_is_drawn_as_one():
    html = shaded_text(["Chapter", "Ġ", "0", "Ċ", "Next"], ["Chapter", "Ġ", "0", "Ċ", "Next"], np.ones(5), None, "t")
    assert "Ġ" not in html and "Ċ" not in html
    assert html.count("\u00a0</span>") == 1 and "↵</span><br>" in html and "“\u00a0” 1" in html


def test_the_box_opens_on_the_chosen_token_with_the_text_before_folded():
    tokens = ["Ġword"] * 2000
    labels = [PAYLOAD] * 10 + ["word"] * 1990  # markup typed early: into the folded part
    html = shaded_text(labels, tokens, np.ones(2000), 1999, "t")
    folded, shown = html.split("</details>")
    start = 1999 - BEFORE
    assert f"Tokens 0–{start - 1:,} come before: show them</summary>" in folded
    assert folded.count("<span") == start and 'title="0 · weight' in folded  # folded, still on the page
    assert shown.count("<span") == 2000 - start and "outline" in shown.split("<span")[-1]
    assert "<img" not in html and folded.count("&lt;img") == 10 + 5  # the tokens and the largest, escaped


def test_a_few_line_breaks_before_the_chosen_token_end_what_stays_in_view():
    tokens = ["Ġa", "Ċ", "Ġb", "Ċ", "Ġc", "ĊĊ", "Ġd", "Ċ", "Ġe", "Ġf"]
    assert first_in_view(tokens, 9) == 2  # after the BEFORE_LINES-th break back from 9
    assert BEFORE_LINES == 4 and first_in_view(tokens, 4) == 0 and first_in_view(tokens, None) == 0
    assert first_in_view(["Ġa"] * 500, 300, scale=2.0) == 300 - BEFORE // 4  # larger type: fewer tokens
    assert "<details>" not in shaded_text(["a"] * 5, ["Ġa"] * 5, np.ones(5), 4, "t")  # all of it in view


def test_every_long_view_stays_under_2_mb_at_8192_tokens():
    rng = np.random.default_rng(0)
    labels = [f"tok{i % 97}" for i in range(LONG)]
    tokens = ["Ġ" + t for t in labels]
    size = 256  # the page's POOLED_SIZE
    block = block_size(LONG, size)
    pooled = pooled_heatmap(rng.random((LONG // block, LONG // block), dtype=np.float32), block, block,
                            "Layer 3, head 2", "mean weight", causal=True, window=(slice(0, 512), slice(0, 512)))
    window = attention_heatmap(rng.random((MAX_WINDOW, MAX_WINDOW), dtype=np.float32), labels[4000:4512],
                               labels[3800:4312], "window", causal=True, first_query=4000, first_key=3800)
    # the overview's PNG depends on the model's shape and the heads' content, not on the length: SmolLM2's
    # 30 x 9 cells of 96 pixels of pure noise would take 2.6 MB (as at 512 tokens); attention-like heads far less
    distance = np.abs(np.subtract.outer(np.arange(OVERVIEW_SIZE), np.arange(OVERVIEW_SIZE)))
    widths = rng.uniform(1, 30, (30, 9, 1, 1))  # SmolLM2's 30 x 9 heads, each its own reach, a little noise
    heads = np.exp(-distance / widths) * rng.uniform(0.98, 1.0, (30, 9, OVERVIEW_SIZE, OVERVIEW_SIZE))
    means, maxima = block_pooled(heads.astype(np.float32), thumbnail_cell(30, 9))
    overview = heads_overview(thumbnail_grid(maxima), (0, 0), "All heads", kv_heads=3)
    text = shaded_text(labels, tokens, rng.random(LONG), LONG - 1, "Where it looks")
    sizes = [len(view.encode()) for view in (pooled.to_json(), window.to_json(), overview.to_json(), text)]
    assert max(sizes) <= MAX_BYTES, sizes
    assert array(window.to_plotly_json()["data"][0]["z"]).shape == (MAX_WINDOW, MAX_WINDOW)
    assert text.count("<span") == LONG and means.shape[-1] <= OVERVIEW_SIZE
