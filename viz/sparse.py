"""Figures of the Sparse attention page: masks, growth, reachability, coverage, cost."""
import base64
import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from viz.heatmap import attention_heatmap
from viz.labels import axis_labels, display_token, escape
from viz.theme import ATTENTION_SCALE, HIGHLIGHT_COLOR, MASKED_COLOR, log_ticks, style

MASK_PIXELS = 1024  # a mask is pooled to at most this many pixels a side (4096 -> 4x4 cells a pixel)
ACTIVE_RGB = np.array([8, 48, 107])  # the darkest blue of ATTENTION_SCALE
INACTIVE_RGB = np.array([int(MASKED_COLOR[k:k + 2], 16) for k in (1, 3, 5)])
FIELDS = (("dense", "dense"), ("masked", "masked"), ("block-sparse (estimate)", "block_sparse"))
SERIES = {"dense": "#4c72b0", "masked": HIGHLIGHT_COLOR, "block-sparse (estimate)": "#55a868", "n²": "#8c8c8c"}


def _png_uri(rgb: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def mask_side(n: int) -> int:
    """Pixels a side of the image of an [n, n] mask: at most MASK_PIXELS, each pixel the same whole
    number of positions (4096 -> 1024 pixels of 4 x 4 cells), so periodic patterns show no moiré."""
    per_pixel = -(-n // MASK_PIXELS)
    return -(-n // per_pixel)


def mask_image(share: np.ndarray) -> str:
    """PNG data URI of share [p, p] (active cells per pixel, 0 to 1): grey (none) to dark blue (all)."""
    rgb = INACTIVE_RGB + np.asarray(share, dtype=np.float32)[..., None] * (ACTIVE_RGB - INACTIVE_RGB)  # [p, p, 3]
    return _png_uri(rgb)


def mask_figure(share: np.ndarray, n: int, title: str, height: int = 560) -> go.Figure:
    """An [n, n] mask as one image, usable at n = 4096; hover names query and key positions.

    share [p, p]: the mask mean-pooled to mask_side(n) a side (models.analysis.numerics.pooled),
    the share of active cells under each pixel; the mask itself (bool) when p = n.
    """
    per_pixel = n / len(share)
    center = (per_pixel - 1) / 2  # pixel k covers positions k p .. k p + p - 1
    fig = go.Figure(go.Image(
        source=mask_image(share), x0=center, y0=center, dx=per_pixel, dy=per_pixel,
        hovertemplate=("query %{y}, key %{x}" if per_pixel == 1 else
                       f"around query %{{y}}, key %{{x}} ({per_pixel:.3g}×{per_pixel:.3g} cells a pixel)")
                      + "<extra></extra>",
    ))
    fig.update_xaxes(title="key position j (attended to)", side="bottom", showgrid=False, zeroline=False)
    fig.update_yaxes(title="query position i (attending)", showgrid=False, zeroline=False, scaleanchor="x")
    fig.update_layout(dragmode="zoom")
    return style(fig, title, height=height)


def mark_path(fig: go.Figure, steps: list[int]) -> go.Figure:
    """Outline the cells a path uses: (steps[0], steps[1]), (steps[1], steps[2]), ..."""
    queries, keys = steps[:-1], steps[1:]
    fig.add_trace(go.Scatter(
        x=keys, y=queries, mode="markers+lines",
        marker=dict(symbol="square-open", size=14, color=HIGHLIGHT_COLOR, line=dict(width=3)),
        line=dict(color=HIGHLIGHT_COLOR, dash="dot"), name="path cells",
        hovertemplate="query %{y:.0f} attends to key %{x:.0f}<extra>path</extra>",
    ))
    return fig


def growth_figure(growth, label: str) -> go.Figure:
    """growth (models.sparse.cost.Growth): active cells against n on log-log axes, with n²."""
    sizes, exponent = growth.sizes, growth.exponent
    fig = go.Figure([
        go.Scatter(x=sizes, y=sizes.astype(float) ** 2, name="full attention: n²", mode="lines",
                   line=dict(color=SERIES["n²"], dash="dash")),
        go.Scatter(x=sizes, y=growth.cells, name=f"{escape(label)}: ~n^{exponent:.2f}", mode="lines+markers",
                   line=dict(color=SERIES["dense"], width=3),
                   hovertemplate="n = %{x}<br>%{y:,} active cells<extra></extra>"),
    ])
    fig.update_xaxes(type="log", title="sequence length n (tokens)", tickvals=list(sizes),
                     ticktext=[str(s) for s in sizes])
    fig.update_yaxes(type="log", title="active cells (query-key pairs computed)", exponentformat="power", dtick=1)
    fig.update_layout(legend=dict(x=0.01, y=0.99, bgcolor="rgba(255,255,255,0.8)"))
    return style(fig, f"Active cells grow like n^{exponent:.2f} (fitted slope in log-log)", height=460)


def reach_figure(reach_by_layer: np.ndarray, past_only: bool) -> go.Figure:
    """Share of (query, key) pairs connected after L stacked layers."""
    layers = np.arange(len(reach_by_layer))
    scope = "pairs with key j ≤ query i" if past_only else "all (query, key) pairs"
    fig = go.Figure(go.Scatter(x=layers, y=100 * reach_by_layer, mode="lines+markers", line=dict(shape="hv", width=3),
                               hovertemplate="after %{x} layers: %{y:.1f}% connected<extra></extra>"))
    fig.update_xaxes(title="layers stacked", rangemode="tozero", dtick=max(1, len(layers) // 12))
    fig.update_yaxes(title="% of pairs connected", range=[0, 105])
    return style(fig, f"How far information travels as layers stack ({scope})", height=380)


def distance_figure(distance: np.ndarray) -> go.Figure:
    """Shortest path length per (query, key); pairs that never connect are grey."""
    n = len(distance)
    shown = np.where(distance < 0, np.nan, distance).astype(np.float32)
    fig = go.Figure(go.Heatmap(
        z=shown, x0=0, dx=1, y0=0, dy=1, colorscale="Viridis", zmin=0, hoverongaps=False,
        colorbar=dict(title=dict(text="layers"), thickness=14, dtick=max(1, int(np.nanmax(shown)) // 8)),
        hovertemplate="query %{y} receives key %{x}<br>after %{z} layers<extra></extra>",
    ))
    fig.update_xaxes(title="key position j", showgrid=False, range=[-0.5, n - 0.5], constrain="domain")
    fig.update_yaxes(title="query position i", autorange="reversed", showgrid=False, scaleanchor="x",
                     constrain="domain")
    fig = style(fig, "Layers needed for query i to receive key j (grey: never)", height=560)
    fig.update_layout(plot_bgcolor=MASKED_COLOR)  # NaN cells show the background
    return fig


def path_figure(steps: list[int], n: int) -> go.Figure:
    """The path drawn through the layers: the key at the bottom (no layer passed), the query on top."""
    hops = len(steps) - 1
    upward = steps[::-1]  # key first: it is the information that travels
    layers = np.arange(hops + 1)
    fig = go.Figure([
        go.Scatter(x=[0, n - 1, None] * (hops + 1), y=[y for layer in layers for y in (layer, layer, None)], mode="lines",
                   hoverinfo="skip", line=dict(color=MASKED_COLOR, width=6), showlegend=False),
        go.Scatter(x=upward, y=layers, mode="lines+markers+text", text=[str(p) for p in upward],
                   textposition="top center", textfont=dict(size=16), showlegend=False,
                   marker=dict(size=16, color=HIGHLIGHT_COLOR), line=dict(color=HIGHLIGHT_COLOR, width=3),
                   hovertemplate="after %{y} layer(s): position %{x} holds the key's information<extra></extra>"),
    ])
    pad = max(1.0, 0.04 * n)  # room for the labels at the ends
    fig.update_xaxes(title="position", range=[-pad, n - 1 + pad], zeroline=False)
    # a count of layers passed, not a layer's index (those start at 0): 0 is the key itself
    fig.update_yaxes(title="layers passed", tickvals=list(layers), range=[-0.4, hops + 0.6], zeroline=False)
    route = " → ".join(map(str, steps))
    title = f"Query {steps[0]} receives key {steps[-1]} after {hops} layer(s): {route}"
    return style(fig, title, height=300 + 40 * hops)


def coverage_figure(coverage: np.ndarray, focused: tuple[int, int]) -> go.Figure:
    """coverage [layers, heads] in percent, the focused head outlined."""
    layers, heads = coverage.shape
    fig = go.Figure(go.Heatmap(
        z=100 * coverage, x=[f"h{h}" for h in range(heads)], y=[f"layer {layer}" for layer in range(layers)],
        zmin=0, zmax=100, colorscale=ATTENTION_SCALE, text=np.round(100 * coverage).astype(int),
        texttemplate="%{text}", colorbar=dict(title=dict(text="% inside"), thickness=14),
        hovertemplate="%{y}, %{x}<br>%{z:.1f}% of the attention inside the pattern<extra></extra>",
    ))
    layer, head = focused
    fig.add_shape(type="rect", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                  line=dict(color=HIGHLIGHT_COLOR, width=3))
    fig.update_xaxes(title="head", side="top")
    fig.update_yaxes(title="layer", autorange="reversed")
    return style(fig, "Share of each head's attention that falls inside the pattern (%)", height=150 + 45 * layers)


def overlay_figure(attention: np.ndarray, mask: np.ndarray, tokens: list[str], title: str,
                   causal: bool) -> go.Figure:
    """One head's attention with the cells outside the pattern hatched over in grey."""
    fig = attention_heatmap(attention, tokens, tokens, title=title, causal=causal)
    labels = axis_labels(tokens)
    outside = np.where(mask, np.nan, 1.0)
    fig.add_trace(go.Heatmap(
        z=outside, x=labels, y=labels, colorscale=[[0, "#7f7f7f"], [1, "#7f7f7f"]], opacity=0.55,
        showscale=False, hoverinfo="skip", hoverongaps=False, name="outside the pattern",
    ))
    return fig


def cosine_figure(cosine: np.ndarray) -> go.Figure:
    """cosine [layers + 1] (EnforcedRun.cosine): the sparse run's hidden states against the dense run's,
    after the embeddings and after each layer, the layers numbered from 0 as on every page."""
    names = ["embeddings"] + [f"layer {layer}" for layer in range(len(cosine) - 1)]
    fig = go.Figure(go.Bar(x=names, y=cosine, marker_color=SERIES["dense"], text=[f"{c:.3f}" for c in cosine],
                           textposition="outside", hovertemplate="%{x}: cosine %{y:.4f}<extra></extra>"))
    fig.update_xaxes(title="hidden states after")
    fig.update_yaxes(title="mean cosine similarity to dense", range=[min(0.0, float(cosine.min())), 1.08])
    return style(fig, "How close the sparse run stays to the dense run, layer by layer", height=400)


def cost_figure(points) -> go.Figure:
    """points (models.sparse.cost.CostPoint list): measured time and memory, dense vs masked,
    and the block-sparse estimate, on log-log axes labelled in plain numbers (1-2-5 ticks)."""
    sizes = [p.n for p in points]
    panels = {  # subplot title: (unit, values per series)
        "Time per call": ("ms", {name: [1e3 * getattr(p, f"{field}_seconds") for p in points]
                                 for name, field in FIELDS}),
        "Peak memory": ("MB", {name: [getattr(p, f"{field}_bytes") / 2**20 for p in points] for name, field in FIELDS}),
    }
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(panels))
    for col, (title, (unit, series)) in enumerate(panels.items(), start=1):
        for name, values in series.items():
            dash = "dot" if "estimate" in name else "solid"
            fig.add_trace(go.Scatter(x=sizes, y=values, name=name, legendgroup=name, showlegend=col == 1,
                                     mode="lines+markers", line=dict(color=SERIES[name], width=3, dash=dash),
                                     hovertemplate=f"n = %{{x:,}}: %{{y:.3g}} {unit}<extra>{name}</extra>"),
                          row=1, col=col)
        shown = [v for values in series.values() for v in values if v > 0]
        ticks = log_ticks(min(shown), max(shown))
        fig.update_yaxes(type="log", title=f"{title.lower()} ({unit}, log scale)", tickvals=ticks,
                         ticktext=[f"{t:g}" for t in ticks], row=1, col=col)
    fig.update_xaxes(type="log", title="sequence length n (tokens, log scale)", tickvals=sizes,
                     ticktext=[f"{s:,}" for s in sizes])
    fig = style(fig, "Dense vs masked attention, measured on this machine", height=440)
    fig.update_layout(legend=dict(orientation="h", y=-0.25), margin=dict(b=90))
    return fig


def cost_summary(points) -> str:
    """The honest reading of the largest measured n, as markdown."""
    p = points[-1]
    return (
        f"At n = {p.n} masked attention took **{1e3 * p.masked_seconds:.0f} ms** and dense "
        f"**{1e3 * p.dense_seconds:.0f} ms** ({p.masked_seconds / p.dense_seconds:.2f}×: the same work, up to the "
        f"noise of a busy machine), and needed **{p.masked_bytes / 2**20:.0f} MB** against "
        f"**{p.dense_bytes / 2**20:.0f} MB**. A boolean mask on a dense kernel still computes all n² scores and then "
        "adds the mask, so it saves nothing. Only a kernel that skips inactive blocks saves: this pattern keeps "
        f"{p.block_share:.0%} of its blocks, so such a kernel would need about {1e3 * p.block_sparse_seconds:.0f} ms "
        f"and {p.block_sparse_bytes / 2**20:.0f} MB (an estimate)."
    )


def cost_frame(points) -> pd.DataFrame:
    return pd.DataFrame({
        "n": [p.n for p in points],
        "dense ms": [round(1e3 * p.dense_seconds, 1) for p in points],
        "masked ms": [round(1e3 * p.masked_seconds, 1) for p in points],
        "dense MB": [round(p.dense_bytes / 2**20, 1) for p in points],
        "masked MB": [round(p.masked_bytes / 2**20, 1) for p in points],
        "active blocks": [f"{p.block_share:.1%}" for p in points],
        "block-sparse ms (est.)": [round(1e3 * p.block_sparse_seconds, 1) for p in points],
        "block-sparse MB (est.)": [round(p.block_sparse_bytes / 2**20, 1) for p in points],
    })


def _candidate_text(candidate) -> str:
    return display_token(candidate.token) + (" (special)" if candidate.special else "")


def predictions_frame(dense, sparse) -> pd.DataFrame:
    """Top predictions at one position (models.core.predictions.Candidate lists), dense and sparse
    side by side (plain text, not HTML); special tokens are marked "(special)"."""
    return pd.DataFrame({
        "rank": range(1, len(dense) + 1),
        "dense": [_candidate_text(p) for p in dense],
        "dense p": [round(p.probability, 4) for p in dense],
        "sparse": [_candidate_text(p) for p in sparse],
        "sparse p": [round(p.probability, 4) for p in sparse],
    })
