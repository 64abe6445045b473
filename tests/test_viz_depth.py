"""viz for the Heads page in depth: statistics heatmap and table, token bars, export and projector settings."""
import numpy as np
import pytest

from viz.bars import token_bars
from viz.heatmap import attention_heatmap
from viz.labels import escape
from viz.stats import stats_heatmap, stats_table
from viz.theme import FONT, for_projector, plotly_config

PAYLOAD = '<img src=x onerror="alert(1)">'


def test_stats_heatmap_cells_are_clickable_heads_and_mark_the_baseline():
    values = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    fig = stats_heatmap(values, "entropy", "nats", focused=(2, 1), title="t", baseline=1.5)
    heat, points = fig.data
    np.testing.assert_array_equal(heat.z, values)
    assert heat.zmax == 1.5  # the baseline stays on the colour scale
    assert list(heat.colorbar.tickvals) == [1.5] and "uniform 1.50" in heat.colorbar.ticktext[0]
    assert "bdata" not in str(points.to_plotly_json()["customdata"])  # a click hands back a plain [layer, head]
    assert list(points.customdata[2 * 4 + 1]) == [2, 1] and points.text[2 * 4 + 1] == values[2, 1]
    assert (points.x[9], points.y[9]) == (1, 2)  # each point sits on its cell
    rect = fig.layout.shapes[0]
    assert rect.x0 < 1 < rect.x1 and rect.y0 < 2 < rect.y1
    shares = stats_heatmap(values / 2, "to self", "share", focused=(0, 0), title="t")
    assert (shares.data[0].zmin, shares.data[0].zmax) == (0, 1)
    unchanged = stats_heatmap(np.zeros((3, 4)), "JS divergence", "nats", focused=(0, 0), title="t")
    assert (unchanged.data[0].zmin, unchanged.data[0].zmax) == (0, 1)  # zero at the bottom, not mid-scale


def test_stats_table_has_a_row_per_head_in_layer_head_order():
    values = {"entropy": np.array([[1.0, 2.0], [3.0, 4.0]]), "to self": np.array([[0.1, 0.2], [0.3, 0.4]])}
    table = stats_table(values, {"entropy": "entropy (nats)", "to self": "to self"})
    assert list(table.columns) == ["layer", "head", "entropy (nats)", "to self"]
    assert table.iloc[2].tolist() == [1, 0, 3.0, 0.3]  # row r is (layer, head) = divmod(r, heads)


def test_token_bars_follow_text_order_with_safe_labels():
    fig = token_bars(np.array([0.5, 0.3, 0.2]), ["[CLS]", PAYLOAD, "[SEP]"], title=PAYLOAD, value_name="share")
    bars = fig.data[0]
    assert list(bars.x) == ["0 [CLS]", "1 " + escape(PAYLOAD), "2 [SEP]"]
    np.testing.assert_array_equal(bars.y, [0.5, 0.3, 0.2])
    assert "<img" not in fig.to_json()


def test_camera_saves_png_or_svg_and_projector_enlarges():
    assert plotly_config("a b", "svg")["toImageButtonOptions"] == {"format": "svg", "filename": "a-b", "scale": 3}
    with pytest.raises(ValueError, match="gif"):
        plotly_config("x", "gif")
    fig = attention_heatmap(np.eye(3, dtype=np.float32), list("abc"), list("abc"), "t")
    height = fig.layout.height
    for_projector(fig)
    assert fig.layout.font.size > FONT["size"] and fig.layout.height > height
    assert fig.layout.xaxis.tickfont.size > FONT["size"]
