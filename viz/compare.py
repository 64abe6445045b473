"""Figures comparing two runs (A's head, B's head, their difference, divergence and matching)
and a checkpoint series (head statistics and divergence from the final checkpoint over steps)."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from viz.bars import token_bars
from viz.heatmap import attention_heatmap
from viz.labels import escape
from viz.stats import stats_heatmap
from viz.steps import step_axis
from viz.theme import HIGHLIGHT_COLOR, head_color, style

DIFFERENCE_SCALE = "RdBu_r"  # diverging: blue where A attends more, red where B does, white at zero
DIVERGENCE_SCALE = "Viridis"
LAYER_SCALE = "Plasma"  # layers are ordered: low layers dark, high layers light (its yellow end left out)
PANEL_COLUMNS = 3
PANEL_STEP_TICKS = 6  # a tick at every checkpoint up to this many in a panel a third of the page wide
GRID_COLOR = "#eeeeee"


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
        colorbar=dict(title=dict(text="B − A"), thickness=14),
        hovertemplate="query %{y}<br>key %{x}<br>B − A %{z:+.4f}<extra></extra>",
    )
    return fig


def query_divergence_bars(divergence: np.ndarray, tokens: list[str], title: str) -> go.Figure:
    """[q] JSD of A's and B's row for each query: where the two heads disagree."""
    fig = token_bars(divergence, tokens, title, "JS divergence (nats)")
    return fig.update_xaxes(title="query")


def divergence_heatmap(divergence: np.ndarray, focused: tuple[int, int], title: str) -> go.Figure:
    """[layers, heads] JSD between A's and B's same head; each cell is clickable (viz.stats)."""
    return stats_heatmap(divergence, "JS divergence", "nats", focused, title)


def _head_ticks(layers: int, heads: int) -> dict:
    """Ticks of an axis with one position per head: every head when few, else one per layer, centred."""
    if layers * heads <= 24:
        return dict(tickvals=list(range(layers * heads)),
                    ticktext=[f"L{layer} h{head}" for layer in range(layers) for head in range(heads)])
    return dict(tickvals=[layer * heads + (heads - 1) / 2 for layer in range(layers)],
                ticktext=[f"layer {layer}" for layer in range(layers)])


def matching_heatmap(divergences: np.ndarray, best_layer: np.ndarray, best_head: np.ndarray,
                     title: str) -> go.Figure:
    """Every head of A (rows) against every head of B (columns) by JSD; each row's closest B head is ringed.

    divergences [La, Ha, Lb, Hb]; best_layer, best_head [La, Ha].
    """
    la, ha, lb, hb = divergences.shape
    names_a = np.array([f"L{layer} h{head}" for layer in range(la) for head in range(ha)])
    names_b = np.array([f"L{layer} h{head}" for layer in range(lb) for head in range(hb)])
    fig = go.Figure(go.Heatmap(
        z=divergences.reshape(la * ha, lb * hb), zmin=0, colorscale=DIVERGENCE_SCALE,
        customdata=np.stack(np.meshgrid(names_b, names_a), axis=-1).tolist(),  # [row, column, (B, A)]
        colorbar=dict(title=dict(text="JS divergence (nats)"), thickness=14),
        hovertemplate="A %{customdata[1]} vs B %{customdata[0]}<br>JS divergence %{z:.3f} nats<extra></extra>",
    ))
    best = (best_layer * hb + best_head).ravel()
    fig.add_trace(go.Scatter(
        x=best.tolist(), y=list(range(la * ha)), text=[f"A {a} → B {b}" for a, b in zip(names_a, names_b[best])],
        mode="markers", marker=dict(symbol="circle-open", size=10 if la * ha <= 48 else 6, color=HIGHLIGHT_COLOR,
                                    line=dict(width=2)),
        name="closest head of B", hovertemplate="%{text}<extra>closest</extra>",
    ))
    for layer in range(1, lb):  # thin lines between layers
        fig.add_vline(x=layer * hb - 0.5, line=dict(color="white", width=1))
    for layer in range(1, la):
        fig.add_hline(y=layer * ha - 0.5, line=dict(color="white", width=1))
    fig.update_xaxes(title="head of B", showgrid=False, zeroline=False, tickangle=0, **_head_ticks(lb, hb))
    fig.update_yaxes(title="head of A", showgrid=False, zeroline=False, autorange="reversed", **_head_ticks(la, ha))
    fig.update_layout(legend=dict(orientation="h", y=-0.15, x=0))
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


def _gridlines(fig: go.Figure) -> None:
    fig.update_xaxes(showgrid=True, gridcolor=GRID_COLOR)
    fig.update_yaxes(showgrid=True, gridcolor=GRID_COLOR, zeroline=False)


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
                showlegend=layer == 0, line=dict(color=head_color(head), width=2),
                marker=dict(size=5),
                hovertemplate=f"layer {layer}, head {head}<br>step %{{x:,}}<br>{escape(label)} %{{y:.3f}} "
                              f"{unit}<extra></extra>",
            ), row=row + 1, col=column + 1)
        if baseline is not None:
            fig.add_hline(y=baseline, line=dict(color="#888888", dash="dot", width=1), row=row + 1, col=column + 1)
    step_axis(fig, steps, max_ticks=PANEL_STEP_TICKS, title_row=rows)
    _gridlines(fig)
    fig.update_yaxes(title=f"{label} ({unit})", col=1)
    top = 1.0 if unit == "share" else max(float(np.nanmax(values)), baseline or 0.0)
    fig.update_yaxes(range=[0, 1.05 * top])  # from 0, and the baseline inside
    fig.update_layout(legend=dict(title=dict(text="head"), orientation="h", y=-0.08 - 0.1 / rows, x=0))
    return style(fig, title, height=int(140 + 260 * rows))


def divergence_from_final_figure(layer_divergence: np.ndarray, steps: list[int], title: str) -> go.Figure:
    """[S, layers]: one line per layer, JSD from the final checkpoint across steps (0 at the last step)."""
    layers = layer_divergence.shape[1]
    colors = sample_colorscale(LAYER_SCALE, list(np.linspace(0, 0.85, layers)) if layers > 1 else [0.0])
    fig = go.Figure([
        go.Scatter(x=steps, y=layer_divergence[:, layer], mode="lines+markers", name=f"layer {layer}",
                   line=dict(width=2.5, color=colors[layer]),
                   hovertemplate=f"layer {layer}<br>step %{{x:,}}<br>JS divergence %{{y:.3f}} nats<extra></extra>")
        for layer in range(layers)
    ])
    step_axis(fig, steps)
    _gridlines(fig)
    fig.update_yaxes(title="JS divergence (nats)", rangemode="tozero")
    return style(fig, title, height=460)
