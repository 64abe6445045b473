"""viz.heads_at_work: switched-off heads marked on the grid and on layers x heads maps, the loss per token
side by side, the pruning curve."""
import re

import numpy as np
import pytest

from viz.heads_at_work import (
    change_heatmap,
    divergence_figure,
    mark_off,
    pruning_curve_figure,
    switch_off_overview,
    token_loss_figure,
)
from viz.labels import escape
from viz.overview import GAP, thumbnail_grid
from viz.stats import stats_heatmap

PAYLOAD = '<img src=x onerror="alert(1)">'


def _crosses(fig) -> list[tuple[float, float, float, float]]:
    """The boxes (x0, y0, x1, y1) crossed out: each dark line from a top-left corner."""
    return sorted({(s.x0, s.y0, s.x1, s.y1) for s in fig.layout.shapes
                   if s.type == "line" and s.line.color != "white" and s.y1 > s.y0})


def test_switched_off_heads_are_veiled_and_crossed_on_the_grid():
    grid = thumbnail_grid(np.random.default_rng(0).random((3, 4, 5, 5)).astype(np.float32))
    fig = switch_off_overview(grid, [(0, 1), (2, 3)], (1, 1), "grid")
    step = grid.cell + GAP
    assert _crosses(fig) == [(step - 0.5, -0.5, step + grid.cell - 0.5, grid.cell - 0.5),
                             (3 * step - 0.5, 2 * step - 0.5, 3 * step + grid.cell - 0.5, 2 * step + grid.cell - 0.5)]
    veils = [s for s in fig.layout.shapes if s.type == "rect" and s.fillcolor == "white"]
    assert len(veils) == 2 and all(0 < s.opacity < 1 for s in veils)
    points = fig.data[1]
    assert "switch it off" in points.hovertemplate
    assert points.customdata[2 * 4 + 3] == [2, 3]


def test_grid_markers_are_no_larger_than_the_thumbnails_drawn():
    """SmolLM2's 30 x 9 grid: a 96-pixel marker over a ~30-pixel thumbnail sent clicks to a neighbour."""
    grid = thumbnail_grid(np.zeros((30, 9, 4, 4), dtype=np.float32))
    fig = switch_off_overview(grid, [], (0, 0), "grid")
    margin = fig.layout.margin
    assert fig.data[1].marker.size <= (fig.layout.height - margin.t - margin.b) / 30 < grid.cell


def test_heads_are_crossed_out_on_their_cells():
    fig = mark_off(stats_heatmap(np.zeros((2, 3)), "x", "share", (0, 0), "t"), [(1, 2)])
    ((x0, y0, x1, y1),) = _crosses(fig)
    assert (x0 + x1) / 2 == 2 and (y0 + y1) / 2 == 1 and x1 - x0 < 1


def test_divergence_map_shows_the_values_and_the_heads_off():
    divergence = np.array([[0.0, 0.0], [1.5e-4, 0.02]])
    fig = divergence_figure(divergence, (1, 1), [(0, 1)], "divergence")
    np.testing.assert_array_equal(fig.data[0].z, divergence)
    assert fig.data[0].texttemplate is None  # thousandths of a nat would all read 0.00
    assert "%{text:.3g}" in fig.data[1].hovertemplate
    assert len(_crosses(fig)) == 1


def test_change_heatmap_names_what_is_subtracted():
    fig = change_heatmap(np.array([[0.1, -0.1], [0.0, 0.0]]), ["a", "b"], ["a", "b"], "t")
    assert fig.data[0].colorbar.title.text == "off − intact" and fig.data[0].zmid == 0


def test_loss_bars_side_by_side_keep_unscored_tokens_empty():
    intact, changed = np.array([np.nan, 1.0, 2.0]), np.array([np.nan, 1.5, 0.5])
    fig = token_loss_figure(["a", PAYLOAD, "c"], intact, changed, ("intact", "2 heads off"), "loss")
    assert [t.name for t in fig.data] == ["intact", "2 heads off"] and fig.layout.barmode == "group"
    np.testing.assert_array_equal(fig.data[0].y, intact)
    np.testing.assert_array_equal(fig.data[1].y, changed)
    assert list(fig.data[1].x) == ["0 a", "1 " + escape(PAYLOAD), "2 c"]
    assert "<img" not in fig.to_json()


def test_pruning_curve_draws_the_importance_order_over_each_random_order():
    shares = np.linspace(0, 1, 3)
    loss, agreement = np.array([2.0, 3.0, 9.0]), np.array([1.0, 0.8, 0.1])
    random_loss, random_agreement = np.full((2, 3), 5.0), np.full((2, 3), 0.5)
    fig = pruning_curve_figure(shares, loss, agreement, random_loss, random_agreement, "curve")
    ordered = [t for t in fig.data if t.name == "least important first"]
    assert [t.xaxis for t in ordered] == ["x", "x2"]
    np.testing.assert_array_equal(ordered[0].y, loss)
    np.testing.assert_array_equal(ordered[1].y, agreement)
    np.testing.assert_array_equal(ordered[0].x, [0, 50, 100])
    assert len([t for t in fig.data if t.name == "random order"]) == 2 * 2
    assert sum(bool(t.showlegend) for t in fig.data) == 2
    assert fig.layout.yaxis2.range == pytest.approx((0, 1.05))


def test_pruning_curve_hover_writes_percentages_as_the_page_does():
    """One decimal, as the predictions' "77.3%": "9.7% of heads off", "83.0% agreement"."""
    fig = pruning_curve_figure(np.linspace(0, 1, 3), np.ones(3), np.ones(3), np.ones((1, 3)), np.ones((1, 3)), "c")
    percents = [fmt for t in fig.data
                for fmt in re.findall(r"%\{[xy]:([^}]*%|[^}]*\}%)", t.hovertemplate)]  # "%{x:.1f}%", "%{y:.1%}"
    assert len(percents) == 6 and set(percents) == {".1f}%", ".1%"}, percents
