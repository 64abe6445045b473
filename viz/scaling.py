"""Figures of the scaling page: random-vector statistics, softmax saturation, live scores.

Inputs are the dataclasses of models.scaling and models.core.scores (only their numpy fields
are read here, so this module needs neither torch nor the models package at run time).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.labels import axis_labels, display_token, escape, tick_labels
from viz.theme import HIGHLIGHT_COLOR, MASKED_COLOR, style

if TYPE_CHECKING:
    from models.scaling.live import HeadScores, NeuronView
    from models.scaling.random_vectors import (
        Density,
        DotProductSample,
        MeanAbsCurve,
        SoftmaxSweep,
        Spread,
        TemperatureExample,
    )

UNSCALED_COLOR = HIGHLIGHT_COLOR  # q.k as it is
SCALED_COLOR = "#2166ac"  # q.k / sqrt(d)
THEORY_COLOR = "#222222"
MODEL_COLOR = "#5e3c99"  # scores of the live model
VECTOR_SCALE = "RdBu_r"  # signed vector components: blue negative, red positive
BINS = 60
MAX_KEY_LABELS = 48  # key rows labelled in the neuron view's bar columns


def _histogram(values: np.ndarray, color: str, name: str, show_legend: bool = True) -> go.Histogram:
    return go.Histogram(x=values, histnorm="probability density", nbinsx=BINS, marker_color=color,
                        opacity=0.65, name=escape(name), showlegend=show_legend,
                        hovertemplate="%{x}<br>density %{y:.3g}<extra></extra>")


def _density(density: Density, dash: str = "solid") -> go.Scatter:
    return go.Scatter(x=density.x, y=density.y, mode="lines", name=escape(density.label),
                      line=dict(color=THEORY_COLOR, width=2, dash=dash),
                      hovertemplate="%{x:.3g}<br>density %{y:.3g}<extra></extra>")


@dataclass(frozen=True)
class HistogramPanel:
    """One panel of a side-by-side pair: sampled values under their theoretical density."""

    values: np.ndarray
    color: str
    name: str  # legend entry of the histogram
    density: Density
    title: str  # above the panel
    axis: str  # the x axis title


def _histogram_pair(left: HistogramPanel, right: HistogramPanel, title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=(left.title, right.title))
    for col, panel, dash in ((1, left, "solid"), (2, right, "dash")):
        fig.add_trace(_histogram(panel.values, panel.color, panel.name, show_legend=bool(panel.name)), row=1, col=col)
        fig.add_trace(_density(panel.density, dash), row=1, col=col)
        fig.update_xaxes(title_text=panel.axis, row=1, col=col)
    fig.update_yaxes(title_text="probability density", row=1, col=1)
    style(fig, title, height=440)
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", y=-0.22), margin=dict(t=80))
    return fig


def dot_product_histograms(sample: DotProductSample) -> go.Figure:
    """Unscaled and scaled q.k side by side, each with its theoretical normal density."""
    unscaled_theory, scaled_theory = sample.theory
    return _histogram_pair(
        HistogramPanel(sample.unscaled, UNSCALED_COLOR, "sampled q·k", unscaled_theory,
                       f"q·k: spread grows like √d = {np.sqrt(sample.d):.3g}", "q·k"),
        HistogramPanel(sample.scaled, SCALED_COLOR, "sampled q·k / √d", scaled_theory,
                       "q·k / √d: spread stays 1", "q·k / √d"),
        f"{len(sample.unscaled)} random pairs q, k with d = {sample.d} independent N(0, 1) components",
    )


def mean_abs_figure(curve: MeanAbsCurve, chosen: DotProductSample) -> go.Figure:
    """Mean |q.k| against d on log-log axes: sampled, exact, the sqrt(2d/pi) limit, and the chosen d."""
    fig = go.Figure([
        go.Scatter(x=curve.dims, y=curve.limit, mode="lines", name="large-d limit √(2d/π)",
                   line=dict(color=THEORY_COLOR, dash="dot")),
        go.Scatter(x=curve.dims, y=curve.exact, mode="lines", name="exact E|q·k| (Gamma functions)",
                   line=dict(color=THEORY_COLOR, width=2)),
        go.Scatter(x=curve.dims, y=curve.sampled, mode="markers", name=f"sampled ({curve.n_samples} pairs per d)",
                   marker=dict(color=UNSCALED_COLOR, size=9),
                   hovertemplate="d = %{x}<br>mean |q·k| = %{y:.4g}<extra></extra>"),
    ])
    fig.add_trace(go.Scatter(x=[chosen.d], y=[chosen.mean_abs], mode="markers+text", name=f"d = {chosen.d} (chosen above)",
                             marker=dict(color="rgba(0,0,0,0)", size=20, line=dict(color=SCALED_COLOR, width=3)),
                             text=[f"d = {chosen.d}"], textposition="bottom right",
                             hovertemplate="d = %{x}<br>mean |q·k| = %{y:.4g}<extra></extra>"))
    fig.update_xaxes(type="log", title="dimension d (log scale)", exponentformat="power", dtick=1)
    fig.update_yaxes(type="log", title="mean |q·k| (log scale)", exponentformat="power", dtick=1)
    style(fig, "Mean |q·k| grows like √d: ten times the dimension, about three times the score", height=440)
    fig.update_layout(legend=dict(x=0.01, y=0.99, bgcolor="rgba(255,255,255,0.8)"))
    return fig


def _band(dims: np.ndarray, spread: Spread, color: str, name: str, show_legend: bool) -> list[go.Scatter]:
    """Median line with a shaded 10th-90th percentile band."""
    outline = dict(width=0, color=color)
    return [
        go.Scatter(x=dims, y=spread.high, mode="lines", line=outline, showlegend=False, hoverinfo="skip"),
        go.Scatter(x=dims, y=spread.low, mode="lines", line=outline, fill="tonexty", opacity=0.2,
                   fillcolor=_transparent(color), showlegend=False, hoverinfo="skip"),
        go.Scatter(x=dims, y=spread.median, mode="lines+markers", line=dict(color=color, width=2),
                   name=name, legendgroup=name, showlegend=show_legend,
                   hovertemplate="d = %{x}<br>median %{y:.3g}<extra>" + name + "</extra>"),
    ]


def _transparent(color: str, alpha: float = 0.2) -> str:
    red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def softmax_sweep_figure(sweep: SoftmaxSweep) -> go.Figure:
    """Largest weight, entropy and Jacobian norm of the softmax against d, with and without the scale."""
    panels = (("max_weight", "largest softmax weight", "weight"),
              ("entropy", "entropy of the softmax", "entropy (nats)"),
              ("jacobian_norm", "size of the softmax gradient", "‖Jacobian‖ (Frobenius, log)"))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title, _ in panels], horizontal_spacing=0.1)
    for col, (field, _, axis_title) in enumerate(panels, start=1):
        for stats, color, name in ((sweep.unscaled, UNSCALED_COLOR, "softmax(q·k)"),
                                   (sweep.scaled, SCALED_COLOR, "softmax(q·k / √d)")):
            for trace in _band(sweep.dims, getattr(stats, field), color, name, show_legend=col == 1):
                fig.add_trace(trace, row=1, col=col)
        fig.update_yaxes(title_text=axis_title, row=1, col=col)
        fig.update_xaxes(type="log", title_text="dimension d (log)", exponentformat="power", dtick=1, row=1, col=col)
    uniform = float(np.log(sweep.n_keys))
    fig.add_hline(y=uniform, line=dict(color=THEORY_COLOR, dash="dot"), row=1, col=2,
                  annotation_text=f"uniform: ln {sweep.n_keys} = {uniform:.2f}", annotation_position="top right")
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(range=[0, 1.2 * uniform], row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=3)
    style(fig, f"One random query against {sweep.n_keys} random keys, {sweep.n_trials} trials per d "
               "(line: median; band: 10th to 90th percentile)", height=460)
    fig.update_layout(legend=dict(orientation="h", y=-0.25), margin=dict(t=80))
    return fig


def temperature_figure(example: TemperatureExample) -> go.Figure:
    """softmax(q.k / t) over keys sorted by score, with the transformer's t = sqrt(d) for comparison."""
    keys = [f"k{i + 1}" for i in range(len(example.scores))]
    hover = "%{x}: q·k = %{customdata:.3g}<br>weight %{y:.4f}<extra></extra>"
    fig = go.Figure([
        go.Bar(x=keys, y=example.weights, customdata=example.scores, marker_color=UNSCALED_COLOR,
               name=f"t = {example.temperature:g}", hovertemplate=hover),
        go.Scatter(x=keys, y=example.standard, customdata=example.scores, mode="markers",
                   marker=dict(color=SCALED_COLOR, size=10, symbol="diamond"),
                   name=f"t = √d = {np.sqrt(example.d):.3g} (scaled attention)", hovertemplate=hover),
    ])
    fig.update_xaxes(title="keys, highest score q·k first")
    fig.update_yaxes(title="softmax weight", range=[0, 1.05])
    style(fig, f"softmax(q·k / t) for one query, d = {example.d}: small t sharpens, large t flattens", height=400)
    fig.update_layout(legend=dict(x=0.99, xanchor="right", y=0.99, bgcolor="rgba(255,255,255,0.8)"))
    return fig


def score_histograms(scores: HeadScores, title: str) -> go.Figure:
    """A head's raw and scaled scores, each beside the random-vector baseline for its d_head."""
    raw_baseline, scaled_baseline = scores.baselines
    scaled = f"q·k × {scores.scaling:.4g}"
    return _histogram_pair(
        HistogramPanel(scores.raw, MODEL_COLOR, "this head's scores", raw_baseline,
                       f"raw q·k (d_head = {scores.d_head})", "q·k"),
        HistogramPanel(scores.scaled, MODEL_COLOR, "", scaled_baseline, f"scaled: {scaled}", scaled),
        title,
    )


def _bar_column(fig: go.Figure, col: int, values: np.ndarray, labels: list[str], color, name: str) -> None:
    fig.add_trace(go.Bar(x=values, y=labels, orientation="h", marker_color=color, showlegend=False, name=name,
                         hovertemplate="key %{y}<br>" + name + " %{x:.4g}<extra></extra>"), row=2, col=col)


def _components(z: np.ndarray, y: list[str], zmax: float, name: str) -> go.Heatmap:
    return go.Heatmap(z=z, y=y, x=list(range(z.shape[1])), colorscale=VECTOR_SCALE, zmid=0, zmin=-zmax,
                      zmax=zmax, showscale=False,
                      hovertemplate="%{y}<br>component %{x}<br>" + name + " %{z:.3g}<extra></extra>")


def _neuron_grid(steps: list[str], n_keys: int) -> tuple[go.Figure, int]:
    """A thin row for q above one column per step; the rows of the second row are the keys."""
    wide = len(steps) - 2  # the narrow bar columns after the two [keys x d_head] panels
    height = int(min(1100, max(480, 170 + 20 * n_keys)))
    plot_height = height - 150  # minus title and margins, in pixels
    fig = make_subplots(rows=2, cols=len(steps), shared_yaxes=True, row_heights=[24, plot_height - 24],
                        column_widths=[0.26, 0.26] + [0.48 / wide] * wide, vertical_spacing=36 / plot_height,
                        horizontal_spacing=0.015, specs=[[{}, {}] + [None] * wide, [{}] * len(steps)],
                        subplot_titles=["", ""] + steps)
    return fig, height


def neuron_figure(view: NeuronView, key_tokens: list[str], query_token: str, query_index: int, where: str) -> go.Figure:
    """One query in one head: q, the keys, q * k element by element, q.k, scaled, (+ bias), softmax.

    `where` names the head, e.g. "layer 2, head 5 (self-attention)".
    """
    labels = axis_labels(key_tokens)
    steps = ["key vectors k_j", "q × k_j (each row sums to q·k_j)", "q·k_j", f"× {view.scaling:.4g}"]
    steps += ["+ bias"] if view.bias is not None else []
    steps += ["softmax"]
    fig, height = _neuron_grid(steps, len(labels))
    vector_max = float(np.abs(np.concatenate([view.query[None], view.keys])).max()) or 1.0
    query_label = [escape(f"q ({display_token(query_token)})")]
    for col in (1, 2):  # q above the keys and above the products it makes with them
        fig.add_trace(_components(view.query[None], query_label, vector_max, "q"), row=1, col=col)
    fig.add_trace(_components(view.keys, labels, vector_max, "k"), row=2, col=1)
    products_max = float(np.abs(view.products).max()) or 1.0
    fig.add_trace(_components(view.products, labels, products_max, "q × k"), row=2, col=2)
    shown = np.where(view.visible, SCALED_COLOR, MASKED_COLOR)
    bars = [(view.dots, "q·k"), (view.scaled, "scaled")] + ([(view.bias, "bias")] if view.bias is not None else [])
    for col, (values, name) in enumerate(bars, start=3):
        _bar_column(fig, col, values, labels, shown, name)
    _bar_column(fig, len(steps), view.weights, labels, np.where(view.visible, MODEL_COLOR, MASKED_COLOR), "weight")
    fig.update_yaxes(autorange="reversed", tickvals=tick_labels(labels, MAX_KEY_LABELS), row=2)
    fig.update_xaxes(showticklabels=False, row=1)
    for col in (1, 2):
        fig.update_xaxes(title_text="component of d_head", row=2, col=col)
    for col in range(3, len(steps) + 1):
        fig.update_xaxes(nticks=4, tickangle=0, row=2, col=col)
    fig.update_xaxes(range=[0, 1], row=2, col=len(steps))
    style(fig, f"Neuron view: query {query_index} {display_token(query_token)}, {where}", height=height)
    fig.update_layout(bargap=0.15, margin=dict(t=80))
    return fig
