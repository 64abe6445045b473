"""Figures comparing two runs (A's head, B's head, their difference, divergence and matching)
and a checkpoint series (head statistics and divergence from the final checkpoint over steps)."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from viz.heatmap import attention_heatmap
from viz.labels import escape
from viz.stats import stats_heatmap
from viz.theme import HIGHLIGHT_COLOR, style

DIFFERENCE_SCALE = "RdBu_r"  # diverging: blue where A attends more, red where B does, white at zero
DIVERGENCE_SCALE = "Viridis"
HEAD_COLORS = qualitative.Dark24  # head h has the same colour in every panel
PANEL_COLUMNS = 3


def shared_zmax(*matrices: np.ndarray) -> float:
    """One colour range for several attention heatmaps: the largest weight of any of them."""
    return max(float(np.nanmax(m)) if m.size else 0.0 for m in matrices) or 1.0


def difference_heatmap(difference: np.ndarray, query_tokens: list[str], key_tokens: list[str], title: str,
                       causal: bool = False) -> go.Figure:
    """B − A as a heatmap on a diverging scale centred at zero, symmetric around it."""
    limit = float(np.nanmax(np.abs(difference))) if difference.size else 0.0
    limit = limit or 1e-6  # identical heads: an all-white map, not a degenerate colour bar
    fig = attention_heatmap(difference, query_tokens, key_tokens, title, causal=causal)
    fig.update_traces(
        zmin=-limit, zmax=limit, zmid=0, colorscale=DIFFERENCE_SCALE,
        colorbar=dict(title=dict(text="B − A"), thickness=14, tickvals=[-limit, 0, limit],
                      ticktext=[f"−{limit:.2f} A more", "0", f"+{limit:.2f} B more"]),
        hovertemplate="query %{y}<br>key %{x}<br>B − A %{z:+.4f}<extra></extra>",
    )
    return fig


def divergence_heatmap(divergence: np.ndarray, focused: tuple[int, int], title: str) -> go.Figure:
    """[layers, heads] JSD between A's and B's same head; each cell is clickable."""
    fig = stats_heatmap(divergence, "JS divergence", "nats", focused, title)
    layer_ids, head_ids = np.divmod(np.arange(divergence.size), divergence.shape[1])
    points = next(trace for trace in fig.data if trace.type == "scatter")
    # plain lists: a typed array would reach Streamlit's selection as a dict (cleared first: plotly
    # skips an assignment equal to the current value, and would keep the array)
    points.customdata = None
    points.customdata = np.stack([layer_ids, head_ids, divergence.ravel()], axis=1).tolist()
    return fig


def _head_names(layers: int, heads: int) -> list[str]:
    return [f"L{layer} h{head}" for layer in range(layers) for head in range(heads)]


def _layer_ticks(layers: int) -> dict:
    """Axis ticks at each layer's first head, so 144 heads stay readable."""
    return dict(tickvals=[f"L{layer} h0" for layer in range(layers)], ticktext=[f"layer {i}" for i in range(layers)])


def matching_heatmap(divergences: np.ndarray, best_layer: np.ndarray, best_head: np.ndarray,
                     title: str) -> go.Figure:
    """Every head of A (rows) against every head of B (columns) by JSD; each row's closest B head is ringed.

    divergences [La, Ha, Lb, Hb]; best_layer, best_head [La, Ha].
    """
    la, ha, lb, hb = divergences.shape
    rows, columns = _head_names(la, ha), _head_names(lb, hb)
    fig = go.Figure(go.Heatmap(
        z=divergences.reshape(la * ha, lb * hb), x=columns, y=rows, zmin=0, colorscale=DIVERGENCE_SCALE,
        colorbar=dict(title=dict(text="JS divergence (nats)"), thickness=14),
        hovertemplate="A %{y} vs B %{x}<br>JS divergence %{z:.3f} nats<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=[f"L{layer} h{head}" for layer, head in zip(best_layer.ravel(), best_head.ravel())], y=rows,
        mode="markers", marker=dict(symbol="circle-open", size=10 if la * ha <= 48 else 6, color=HIGHLIGHT_COLOR,
                                    line=dict(width=2)),
        name="closest head of B", hovertemplate="A %{y} → B %{x}<extra>closest</extra>",
    ))
    for layer in range(1, lb):  # thin lines between layers
        fig.add_vline(x=layer * hb - 0.5, line=dict(color="white", width=1))
    for layer in range(1, la):
        fig.add_hline(y=layer * ha - 0.5, line=dict(color="white", width=1))
    fig.update_xaxes(title="head of B", showgrid=False, tickangle=0, **_layer_ticks(lb))
    fig.update_yaxes(title="head of A", showgrid=False, autorange="reversed", **_layer_ticks(la))
    fig.update_layout(legend=dict(orientation="h", y=-0.12, x=0))
    return style(fig, title, height=int(min(900, max(420, 200 + 10 * la * ha))))


def matching_table(best_layer: np.ndarray, best_head: np.ndarray, best_divergence: np.ndarray,
                   same_head: np.ndarray | None) -> pd.DataFrame:
    """One row per head of A: its closest head of B and their JSD (and the JSD to B's same head, if any)."""
    layer_ids, head_ids = np.divmod(np.arange(best_layer.size), best_layer.shape[1])
    columns = {"A layer": layer_ids, "A head": head_ids, "closest B layer": best_layer.ravel(),
               "closest B head": best_head.ravel(), "JSD to it (nats)": np.round(best_divergence.ravel(), 4)}
    if same_head is not None:
        columns["JSD to B's same head (nats)"] = np.round(same_head.ravel(), 4)
    return pd.DataFrame(columns)


def _step_axis(fig: go.Figure, steps: list[int]) -> None:
    """Steps on a log axis when they span decades (100, 1000, 10000), else a linear one."""
    log = steps[0] > 0 and steps[-1] / steps[0] >= 20
    fig.update_xaxes(type="log" if log else "linear", tickvals=steps, ticktext=[f"{s:,}" for s in steps],
                     showgrid=True, gridcolor="#eeeeee")
    fig.update_yaxes(showgrid=True, gridcolor="#eeeeee", zeroline=False)


def series_panels(values: np.ndarray, steps: list[int], label: str, unit: str, title: str,
                  baseline: float | None = None) -> go.Figure:
    """Small multiples: one panel per layer, one line per head, the metric across training steps.

    values [S, layers, heads]; `baseline` (e.g. uniform entropy) is drawn dotted in every panel.
    """
    _, layers, heads = values.shape
    columns = min(layers, PANEL_COLUMNS)
    rows = -(-layers // columns)
    fig = make_subplots(rows=rows, cols=columns, shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=[f"layer {i}" for i in range(layers)],
                        vertical_spacing=0.12 / rows + 0.04, horizontal_spacing=0.03)
    for layer in range(layers):
        row, column = divmod(layer, columns)
        for head in range(heads):
            fig.add_trace(go.Scatter(
                x=steps, y=values[:, layer, head], mode="lines+markers", name=f"h{head}", legendgroup=f"h{head}",
                showlegend=layer == 0, line=dict(color=HEAD_COLORS[head % len(HEAD_COLORS)], width=2),
                marker=dict(size=5),
                hovertemplate=f"layer {layer}, head {head}<br>step %{{x:,}}<br>{escape(label)} %{{y:.3f}} "
                              f"{unit}<extra></extra>",
            ), row=row + 1, col=column + 1)
        if baseline is not None:
            fig.add_hline(y=baseline, line=dict(color="#888888", dash="dot", width=1), row=row + 1, col=column + 1)
    _step_axis(fig, steps)
    fig.update_xaxes(title="training step", row=rows)
    fig.update_yaxes(title=f"{label} ({unit})", col=1)
    if unit == "share":
        fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(legend=dict(title=dict(text="head"), orientation="h", y=-0.08 - 0.1 / rows, x=0))
    return style(fig, title, height=int(140 + 260 * rows))


def divergence_from_final_figure(layer_divergence: np.ndarray, steps: list[int], title: str) -> go.Figure:
    """[S, layers]: one line per layer, JSD from the final checkpoint across steps (0 at the last step)."""
    fig = go.Figure([
        go.Scatter(x=steps, y=layer_divergence[:, layer], mode="lines+markers", name=f"layer {layer}",
                   line=dict(width=2.5), hovertemplate=f"layer {layer}<br>step %{{x:,}}<br>JS divergence "
                                                        "%{y:.3f} nats<extra></extra>")
        for layer in range(layer_divergence.shape[1])
    ])
    _step_axis(fig, steps)
    fig.update_xaxes(title="training step")
    fig.update_yaxes(title="JS divergence from the final checkpoint (nats)", rangemode="tozero")
    return style(fig, title, height=460)
