"""Heads at work: which heads are switched off (on the all-heads grid and on layers x heads maps), the loss
per token of the intact and the changed model, and the pruning curve."""
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.compare import difference_heatmap, divergence_heatmap
from viz.labels import axis_labels, escape, tick_labels
from viz.overview import GAP, ThumbnailGrid, heads_overview
from viz.theme import HIGHLIGHT_COLOR, style

OFF_COLOR = "#1a1a1a"  # the cross over a switched-off head; the focus outline is HIGHLIGHT_COLOR
INTACT_COLOR, CHANGED_COLOR, RANDOM_COLOR = "#9e9e9e", HIGHLIGHT_COLOR, "#b0b0b0"
GRID_COLOR = "#eeeeee"
MIN_GRID_WIDTH = 600  # screen pixels the all-heads grid gets at least, in the page's main column


def _crossed(x0: float, y0: float, x1: float, y1: float, veil: bool) -> list[dict]:
    """Shapes that mark the box (x0, y0)-(x1, y1) as switched off: a dark cross with a white halo (seen on
    light and dark cells alike), over a white veil if asked."""
    shapes = [dict(type="line", x0=a, y0=b, x1=c, y1=d, line=dict(color=color, width=width))
              for color, width in (("white", 5), (OFF_COLOR, 2)) for a, b, c, d in ((x0, y0, x1, y1), (x0, y1, x1, y0))]
    if veil:
        shapes.insert(0, dict(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, fillcolor="white", opacity=0.6,
                              line=dict(width=0)))
    return shapes


def switch_off_overview(grid: ThumbnailGrid, off: list[tuple[int, int]], focused: tuple[int, int],
                        title: str) -> go.Figure:
    """The all-heads grid (viz.overview) with each switched-off (layer, head) veiled and crossed out;
    a click on a thumbnail is meant to switch that head off, or on again."""
    fig = heads_overview(grid, focused, title)
    # a marker is sized in screen pixels: no larger than a thumbnail is drawn, or a click lands on a neighbour
    # (SmolLM2's 30 x 9 grid draws each in ~30 px, its markers were 96 px)
    margin = fig.layout.margin
    shown = min((fig.layout.height - margin.t - margin.b) / grid.layers, MIN_GRID_WIDTH / grid.heads)
    fig.update_traces(marker_size=min(grid.cell, shown), selector=dict(type="scatter"),
                      hovertemplate="layer %{customdata[0]}, head %{customdata[1]}<br>click to switch it off "
                                    "or on<extra></extra>")
    step = grid.cell + GAP
    for layer, head in off:  # pixel i spans [i - 0.5, i + 0.5]
        x0, y0 = head * step - 0.5, layer * step - 0.5
        for shape in _crossed(x0, y0, x0 + grid.cell, y0 + grid.cell, veil=True):
            fig.add_shape(shape)
    return fig


def mark_off(fig: go.Figure, off: list[tuple[int, int]]) -> go.Figure:
    """Cross out the switched-off heads on a layers x heads heatmap whose cells sit at (head, layer)."""
    for layer, head in off:
        for shape in _crossed(head - 0.42, layer - 0.42, head + 0.42, layer + 0.42, veil=False):
            fig.add_shape(shape)
    return fig


def divergence_figure(divergence: np.ndarray, focused: tuple[int, int], off: list[tuple[int, int]],
                      title: str) -> go.Figure:
    """[layers, heads] JSD of each head from the intact model (viz.compare's matrix), switched-off heads crossed
    out. A few heads off move most heads by thousandths of a nat: no numbers in the cells, and the hover gives
    3 significant digits."""
    fig = divergence_heatmap(divergence, focused, title)
    fig.update_traces(texttemplate=None, selector=dict(type="heatmap"))
    fig.update_traces(hovertemplate="layer %{customdata[0]}, head %{customdata[1]}<br>JS divergence %{text:.3g} nats"
                                    "<br>click to see it side by side<extra></extra>", selector=dict(type="scatter"))
    return mark_off(fig, off)


def change_heatmap(difference: np.ndarray, query_tokens: list[str], key_tokens: list[str], title: str,
                   causal: bool = False) -> go.Figure:
    """One head's attention with heads off minus intact, on viz.compare's diverging scale."""
    fig = difference_heatmap(difference, query_tokens, key_tokens, title, causal)
    return fig.update_traces(colorbar=dict(title=dict(text="off − intact")),
                             hovertemplate="query %{y}<br>key %{x}<br>off − intact %{z:+.4f}<extra></extra>")


def token_loss_figure(labels: list[str], intact: np.ndarray, changed: np.ndarray, names: tuple[str, str],
                title: str) -> go.Figure:
    """intact, changed [n] loss in nats of each token (NaN: not scored) as bars side by side per token."""
    x = axis_labels(labels)
    fig = go.Figure([
        go.Bar(x=x, y=values, name=escape(name), marker=dict(color=color),
               hovertemplate=f"%{{x}}<br>{escape(name)}: %{{y:.3f}} nats<extra></extra>")
        for values, name, color in ((intact, names[0], INTACT_COLOR), (changed, names[1], CHANGED_COLOR))
    ])
    fig.update_xaxes(title="token", tickangle=-60, tickvals=tick_labels(x), showgrid=False, automargin=True)
    fig.update_yaxes(title="loss (nats)", rangemode="tozero", showgrid=True, gridcolor=GRID_COLOR)
    fig.update_layout(barmode="group", bargap=0.15, legend=dict(orientation="h", y=1.02, x=1, xanchor="right",
                                                                yanchor="bottom"))
    return style(fig, title, height=400)


def pruning_curve_figure(shares: np.ndarray, loss: np.ndarray, agreement: np.ndarray, random_loss: np.ndarray,
                         random_agreement: np.ndarray, title: str) -> go.Figure:
    """Loss and top-1 agreement against the share of heads switched off: shares, loss, agreement [points]
    (least important heads first), random_loss, random_agreement [seeds, points] (random orders)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["mean loss (nats)", "top-1 agreement with the intact model"])
    percent = 100 * shares
    # every percentage with one decimal, as the page's predictions ("77.3%"); the loss in nats
    curves = ((1, loss, random_loss, "%{y:.3f} nats"), (2, agreement, random_agreement, "%{y:.1%} agreement"))
    for column, ordered, random, value in curves:
        for seed, values in enumerate(random):
            fig.add_trace(go.Scatter(
                x=percent, y=values, mode="lines", line=dict(color=RANDOM_COLOR, width=1.5),
                name="random order", legendgroup="random", showlegend=column == 1 and seed == 0,
                hovertemplate=f"random order {seed + 1}<br>%{{x:.1f}}% of heads off: {value}<extra></extra>",
            ), row=1, col=column)
        fig.add_trace(go.Scatter(
            x=percent, y=ordered, mode="lines+markers", line=dict(color=HIGHLIGHT_COLOR, width=3),
            name="least important first", legendgroup="importance", showlegend=column == 1,
            hovertemplate=f"least important first<br>%{{x:.1f}}% of heads off: {value}<extra></extra>",
        ), row=1, col=column)
    fig.update_xaxes(title="heads switched off (%)", range=[-2, 102], showgrid=True, gridcolor=GRID_COLOR)
    fig.update_yaxes(rangemode="tozero", showgrid=True, gridcolor=GRID_COLOR, zeroline=False)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    return style(fig, title, height=420)
