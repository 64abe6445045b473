"""viz: token labels, the focused-head heatmap, the all-heads overview, export settings."""
import base64
import html
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from viz.adaptive_span import span_heatmap
from viz.bars import token_bars
from viz.heatmap import WINDOW_KEY_TICKS, attention_heatmap
from viz.labels import axis_labels, display_token, escape, tick_labels
from viz.overview import (
    GAP,
    OUTLINE_WIDTH,
    PALETTE_LEVELS,
    TARGET_WIDTH,
    heads_overview,
    kv_groups,
    thumbnail_cell,
    thumbnail_grid,
)
from viz.sparse import mask_figure, mask_side
from viz.theme import file_stem, plotly_config

PAYLOAD = '<img src=x onerror="alert(1)">'


def test_tokens_are_escaped_and_readable():
    assert escape(PAYLOAD) == "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"
    assert display_token("Ġthe") == "the" and display_token("▁the") == "the" and display_token("##ing") == "##ing"
    assert display_token("a\x00b") == "a\\x00b"
    assert axis_labels(["the", "the", PAYLOAD]) == ["0 the", "1 the", "2 " + escape(PAYLOAD)]


def test_escape_uses_only_references_plotly_decodes():
    typed = """He said "hi" & left <b>now</b> O'Neil"""
    escaped = escape(typed)
    assert html.unescape(escaped) == typed and "<" not in escaped and '"' not in escaped
    # plotly.js (svg_text_utils) decodes numeric references and of the named ones only these
    assert set(re.findall(r"&([a-z]+);", escaped)) <= {"amp", "lt", "gt"}


def test_heatmap_carries_the_matrix_and_safe_labels():
    matrix = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=np.float32)
    fig = attention_heatmap(matrix, ["[CLS]", PAYLOAD], ["[CLS]", PAYLOAD], title=PAYLOAD)
    trace = fig.data[0]
    np.testing.assert_array_equal(trace.z, matrix)
    assert "<img" not in fig.to_json()
    assert list(trace.y) == ["0 [CLS]", "1 " + escape(PAYLOAD)]
    assert fig.layout.yaxis.autorange == "reversed"  # first query on top, as text is read


def test_causal_heatmap_hides_the_future():
    matrix = np.tril(np.full((3, 3), 1 / 3, dtype=np.float32))
    z = np.asarray(attention_heatmap(matrix, list("abc"), list("abc"), "t", causal=True).data[0].z)
    assert np.isnan(z[0, 1]) and np.isnan(z[0, 2]) and np.isnan(z[1, 2])
    assert z[2, 0] == np.float32(1 / 3)


def test_long_axes_label_every_kth_token_alike():
    assert tick_labels(list("abcdefg"), most=3) == ["a", "d", "g"] and tick_labels(list("ab"), most=3) == ["a", "b"]
    tokens = [f"t{i}" for i in range(130)]
    heat = attention_heatmap(np.eye(130, dtype=np.float32), tokens, tokens, "t")
    bars = token_bars(np.ones(130), tokens, "t", "weight")
    assert list(heat.layout.xaxis.tickvals) == list(bars.layout.xaxis.tickvals) == axis_labels(tokens)[::3]


def test_a_mask_image_has_whole_positions_a_pixel():
    assert [mask_side(n) for n in (100, 1024, 1025, 3000, 4096)] == [100, 1024, 513, 1000, 1024]
    mask = np.tril(np.ones((6, 6), bool))
    fig = mask_figure(mask, 6, "t")  # unpooled: one pixel a position
    image = fig.data[0]
    assert (image.dx, image.x0) == (1, 0) and image.hovertemplate.startswith("query %{y}, key %{x}")
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(image.source.split(",", 1)[1]))).convert("RGB"))
    assert pixels.shape == (6, 6, 3) and (pixels[0, 1] > pixels[1, 0]).all()  # grey above the diagonal, blue on it
    quarter = mask_figure(np.full((3, 3), 0.25), 12, "t").data[0]  # pooled 4 x 4 cells a pixel
    assert (quarter.dx, quarter.x0) == (4, 1.5) and "4×4 cells a pixel" in quarter.hovertemplate


def test_overview_image_colours_each_head_to_its_own_maximum_with_white_gaps():
    thumbnails = np.zeros((2, 3, 4, 4), dtype=np.float32)
    thumbnails[1, 2, 0, 3] = 0.2  # head (1, 2): one cell, its own maximum, so the darkest colour
    thumbnails[0, 0] = 0.5  # head (0, 0): flat, all at its maximum
    grid = thumbnail_grid(thumbnails)
    image = np.asarray(Image.open(io.BytesIO(grid.png)).convert("RGB")).astype(int)
    cell, step = grid.cell, grid.cell + GAP
    darkest, lightest = image[0, 0], image[0, step]  # head (0, 0) all dark; head (0, 1) all zero
    assert darkest.sum() < 200 and lightest.sum() > 600
    top, left = step, 2 * step  # head (1, 2)
    np.testing.assert_array_equal(image[top, left + cell - 1], darkest)  # query 0, key 3: top-right corner
    np.testing.assert_array_equal(image[top + cell - 1, left], lightest)
    np.testing.assert_array_equal(image[cell + 1, 0], [255, 255, 255])  # the gap between layers
    assert Image.open(io.BytesIO(grid.png)).mode == "P" and PALETTE_LEVELS == 255


def test_stretched_thumbnails_compress_their_repeated_rows():
    """A short text's thumbnails are stretched to the cell, repeating rows: the PNG must find them
    (run-length deflate can't, and made a 32-token page 2.4x heavier)."""
    grid = thumbnail_grid(np.random.default_rng(0).random((6, 12, 32, 32), dtype=np.float32))
    width, height = Image.open(io.BytesIO(grid.png)).size
    assert len(grid.png) < width * height / 3  # ~1 byte a distinct value; a pixel is 1 byte raw


def test_a_tall_grids_image_has_no_more_pixels_than_the_page_can_show():
    """SmolLM2's 30 layers x 9 heads in 96-pixel cells made a 3,060-pixel-tall image drawn 912 pixels
    high: the browser sampled two pixels of three away, after the page had sent them (0.9 MB)."""
    grid = thumbnail_grid(np.random.default_rng(0).random((30, 9, 8, 8), dtype=np.float32))
    height = Image.open(io.BytesIO(grid.png)).size[1]
    drawn = heads_overview(grid, (0, 0), "all heads").layout.height - 90  # the title's 90 pixels aside
    assert 1.5 * drawn < height <= 2 * drawn  # half a screen pixel per image pixel: a 2x screen's every pixel
    assert thumbnail_cell(6, 12) == thumbnail_cell(1, 12) == TARGET_WIDTH // 12 - GAP  # wide grids keep their cells


def test_overview_image_has_one_thumbnail_per_head():
    attentions = np.random.default_rng(0).dirichlet(np.ones(20), size=(3, 5, 20)).astype(np.float32)
    grid = thumbnail_grid(attentions)
    image = Image.open(io.BytesIO(grid.png))
    assert grid.cell == thumbnail_cell(3, 5)
    assert image.size == (5 * (grid.cell + GAP) - GAP, 3 * (grid.cell + GAP) - GAP)
    fig = heads_overview(grid, focused=(2, 3), title="all heads")
    points = fig.data[1]
    assert list(points.customdata[2 * 5 + 3]) == [2, 3]  # clicking that point focuses layer 2, head 3
    rect = fig.layout.shapes[0]
    assert rect.x0 < points.x[13] < rect.x1 and rect.y0 < points.y[13] < rect.y1
    # the outline runs in the gaps, clear of the focused head's edge pixels (pixel i spans i ± 0.5)
    # and of its neighbours', even with the grid shown at half size (a line of w screen pixels
    # then covers 2w image pixels, w either side of its centre)
    step, margin = grid.cell + GAP, OUTLINE_WIDTH / 2 * 2
    left, top = 3 * step - 0.5, 2 * step - 0.5  # the focused cell's outer edges
    right, bottom = left + grid.cell, top + grid.cell
    assert left - GAP + margin <= rect.x0 <= left - margin and right + margin <= rect.x1 <= right + GAP - margin
    assert top - GAP + margin <= rect.y0 <= top - margin and bottom + margin <= rect.y1 <= bottom + GAP - margin
    assert fig.data[0].source.startswith("data:image/png;base64,")
    assert base64.b64decode(fig.data[0].source.split(",", 1)[1]) == grid.png


def test_overview_parts_and_names_the_query_heads_that_share_a_key_value_head():
    attentions = np.random.default_rng(0).dirichlet(np.ones(8), size=(2, 9, 8)).astype(np.float32)
    grid = thumbnail_grid(attentions)
    assert kv_groups(9, 3) == [range(0, 3), range(3, 6), range(6, 9)] and kv_groups(9, 9) == [range(i, i + 1)
                                                                                               for i in range(9)]
    fig = heads_overview(grid, focused=(1, 4), title="all heads", kv_heads=3)  # SmolLM2's 9 heads, 3 kv heads
    step = grid.cell + GAP
    labels = fig.layout.annotations
    assert [a.text for a in labels] == ["kv 0", "kv 1", "kv 2"]
    assert labels[1].hovertext == "key/value head 1, read by heads 3–5"
    # each name is centred under its group's columns, just under the image
    assert [a.x for a in labels] == pytest.approx([(3 * g * step + 3 * (g + 1) * step - GAP - 1) / 2 for g in range(3)])
    assert {a.y for a in labels} == {2 * step - GAP - 0.5} and {a.yanchor for a in labels} == {"top"}
    # a line runs down the middle of the gap before heads 3 and 6, clear of both neighbours' pixels
    separators = fig.layout.shapes[:-1]
    assert [s.x0 for s in separators] == [3 * step - GAP / 2 - 0.5, 6 * step - GAP / 2 - 0.5]
    outline = fig.layout.shapes[-1]
    assert outline.type == "rect" and outline.x0 == pytest.approx(4 * step - 0.5 - GAP / 2)
    hover = fig.data[1]
    assert hover.text[1 * 9 + 4] == " · key/value head 1 (heads 3–5)" and list(hover.customdata[13]) == [1, 4]
    plain = heads_overview(grid, focused=(1, 4), title="all heads", kv_heads=9)  # one key/value head each
    assert not plain.layout.annotations and len(plain.layout.shapes) == 1 and set(plain.data[1].text) == {""}


def test_overview_axes_end_at_the_image():
    """Autorange would pad them by the invisible markers' size: blank bands around the grid."""
    grid = thumbnail_grid(np.full((3, 5, 4, 4), 0.25, dtype=np.float32))
    fig = heads_overview(grid, focused=(0, 0), title="all heads")
    step = grid.cell + GAP
    # half a gap beyond the first and last thumbnails, where the focus outline runs
    assert list(fig.layout.xaxis.range) == [-0.5 - GAP / 2, 5 * step - GAP / 2 - 0.5]
    assert list(fig.layout.yaxis.range) == [3 * step - GAP / 2 - 0.5, -0.5 - GAP / 2]  # reversed: layer 0 on top


def test_export_names_are_file_safe():
    assert file_stem("attention", "org/model <x>", "L2", "H5") == "attention_org-model-x-_L2_H5"
    config = plotly_config("heads minilm")
    assert config["toImageButtonOptions"] == {"format": "png", "filename": "heads-minilm", "scale": 3}
    json.dumps(config)


def test_a_long_texts_window_labels_at_most_window_key_ticks_keys():
    keys = [f"k{i}" for i in range(256)]
    queries = [f"q{i}" for i in range(256)]
    window = attention_heatmap(np.ones((256, 256), dtype=np.float32), queries, keys, "t", first_query=1500,
                               first_key=1400, key_ticks=WINDOW_KEY_TICKS)
    ticks = list(window.layout.xaxis.tickvals)
    assert ticks == axis_labels(keys, 1400)[::8] and len(ticks) <= WINDOW_KEY_TICKS  # 8 = ceil(256 / 32)
    assert list(window.layout.yaxis.tickvals) == axis_labels(queries, 1500)[::4]  # queries: MAX_TICK_LABELS
    after = span_heatmap(np.ones((256, 256)), np.ones((256, 256)), keys, "t", False, 1.0, WINDOW_KEY_TICKS)
    assert list(after.layout.xaxis.tickvals) == axis_labels(keys)[::8]
