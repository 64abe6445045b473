"""Figures of the Adaptive attention span page: mask curves, learned spans, spans over training."""
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.bars import token_bars
from viz.heatmap import attention_heatmap
from viz.labels import MAX_TICK_LABELS, escape
from viz.theme import HIGHLIGHT_COLOR, MASKED_COLOR, head_color, style

LAYER_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


@dataclass(frozen=True)
class Curve:
    """One head's mask curve at its corners (models.span.mask.mask_curve)."""

    label: str
    distance: np.ndarray  # [k] tokens
    value: np.ndarray  # [k] m_z(distance)
    color: str = HIGHLIGHT_COLOR
    dash: str = "solid"
    width: float = 2.5


def mask_curves_figure(curves: list[Curve], max_span: int, unit: str, title: str,
                       marks: tuple[float, float] | None = None) -> go.Figure:
    """Curves m_z(x) over distance 0..S; `marks` (z, z + R) draws the focused curve's corners."""
    fig = go.Figure([
        go.Scatter(x=c.distance, y=c.value, mode="lines", name=escape(c.label),
                   line=dict(color=c.color, dash=c.dash, width=c.width),
                   hovertemplate=f"distance %{{x:.1f}} {unit}<br>mask %{{y:.2f}}<extra>{escape(c.label)}</extra>")
        for c in curves
    ])
    if marks is not None:
        z, end = marks
        fig.add_vrect(x0=z, x1=min(end, max_span), fillcolor=MASKED_COLOR, opacity=0.35, line_width=0)
        fig.add_vline(x=z, line=dict(color="#444", dash="dot"))
        fig.add_annotation(x=z, y=1.08, text=f"z = {z:g} ", xanchor="right", showarrow=False)
        fig.add_annotation(x=min(end, max_span), y=1.08, text=f" z + R = {end:g}", showarrow=False,
                           xanchor="left" if end < 0.8 * max_span else "right")
    fig.update_xaxes(title=f"distance x from the query back to the key ({unit})", range=[0, max_span])
    fig.update_yaxes(title="mask m_z(x)", range=[-0.05, 1.15])
    fig.update_layout(legend=dict(orientation="h", y=-0.22, x=0))
    return style(fig, title, height=420)


def span_heatmap(after: np.ndarray, mask: np.ndarray, tokens: list[str], title: str, causal: bool,
                 zmax: float, key_ticks: int = MAX_TICK_LABELS) -> go.Figure:
    """The masked attention [n, n] with the cells whose mask is 0 drawn grey, like a causal future;
    at most `key_ticks` key labels (attention_heatmap)."""
    shown = np.where(mask > 0, after, np.nan)
    fig = attention_heatmap(shown, tokens, tokens, title, causal=causal, zmax=zmax, key_ticks=key_ticks)
    return fig.update_layout(plot_bgcolor=MASKED_COLOR)


def removed_mass_figure(removed: np.ndarray, tokens: list[str], title: str) -> go.Figure:
    """removed [n]: the attention mass each query loses to the mask, before renormalising."""
    fig = token_bars(removed, tokens, title, "mass removed")
    fig.update_xaxes(title="query token")
    fig.update_yaxes(range=[0, 1.02])
    return fig


def span_bars_figure(spans: np.ndarray, max_span: int, title: str) -> go.Figure:
    """spans [layers, heads] in characters as bars grouped by layer, one colour per head."""
    layers, heads = spans.shape
    x = [f"layer {layer}" for layer in range(layers)]
    fig = go.Figure([
        go.Bar(x=x, y=spans[:, head], name=f"head {head}", marker_color=head_color(head),
               text=[f"{s:.0f}" for s in spans[:, head]], textposition="outside", cliponaxis=False,
               hovertemplate=f"%{{x}}, head {head}<br>span z %{{y:.1f}} characters<extra></extra>")
        for head in range(heads)
    ])
    fig.add_hline(y=max_span, line=dict(color="#444", dash="dash"), annotation_text=f"S = {max_span}",
                  annotation_position="top right")
    fig.update_xaxes(title="layer")
    fig.update_yaxes(title="learned span z (characters)", range=[0, max_span * 1.15])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2, x=0))
    return style(fig, title, height=440)


def spans_over_steps_figure(steps: list[int], spans: np.ndarray, loss: list[float], max_span: int,
                            title: str) -> go.Figure:
    """spans [logged steps, layers, heads] (top) and the language-model loss (bottom) per step."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.08)
    layers, heads = spans.shape[1:]
    for layer in range(layers):
        for head in range(heads):
            fig.add_trace(go.Scatter(
                x=steps, y=spans[:, layer, head], mode="lines", name=f"L{layer} H{head}",
                line=dict(color=head_color(head), dash=LAYER_DASHES[layer % len(LAYER_DASHES)]),
                hovertemplate=f"step %{{x}}<br>L{layer} H{head}: span %{{y:.1f}}<extra></extra>",
            ), row=1, col=1)
    fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines", name="LM loss", line=dict(color="#222", width=2.5),
                             hovertemplate="step %{x}<br>loss %{y:.3f} nats<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title="span z (characters)", range=[0, max_span * 1.05], row=1, col=1)
    fig.update_yaxes(title="LM loss (nats/char)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title="training step", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.16, x=0))
    return style(fig, title, height=600)
