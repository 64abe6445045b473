"""A long text's head as one pooled image: each pixel a block of queries x keys, the zoom window outlined.

At 8,192 tokens a head has 67 million weights; its block-pooled image (models.core.tiles.pooled_head)
has at most a few hundred a side, so the figure stays a few hundred kB whatever the length.
"""
import numpy as np
import plotly.graph_objects as go

from viz.theme import ATTENTION_SCALE, HIGHLIGHT_COLOR, MASKED_COLOR, base_layout

SATURATE_AT = 98  # percentile of the blocks where colours stop darkening


def future_blocks(shape: tuple[int, int], row_block: int, col_block: int) -> np.ndarray:
    """bool [blocks, blocks]: blocks whose every key comes after every one of their queries (a
    causal model's masked future), for blocks of `row_block` queries x `col_block` keys."""
    first_key = np.arange(shape[1]) * col_block  # [col blocks]
    last_query = (np.arange(shape[0]) + 1) * row_block - 1  # [row blocks]
    return first_key[None, :] > last_query[:, None]


def colour_limit(z: np.ndarray) -> float:
    """Where the colour scale saturates: the SATURATE_AT percentile of the finite values, so that
    a few blocks holding most of the weight (a decoder's first token, the attention sink) don't
    wash out the rest; hover still gives every block's value."""
    finite = z[np.isfinite(z)]
    limit = float(np.percentile(finite, SATURATE_AT)) if finite.size else 0.0
    return limit if limit > 0 else float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def pooled_heatmap(image: np.ndarray, row_block: int, col_block: int, title: str, value_name: str,
                   causal: bool = False, window: tuple[slice, slice] | None = None) -> go.Figure:
    """image [row blocks, col blocks]: a head pooled over blocks of `row_block` queries x `col_block`
    keys (block i covers queries i * row_block ... (i + 1) * row_block - 1). Axes count token
    positions; hover gives a block's centre and its `value_name` ("mean weight");
    `window` (rows, cols) of positions is outlined. A causal model's wholly future blocks are grey;
    colours saturate at colour_limit."""
    z = image.astype(np.float32, copy=True)
    if causal:
        z[future_blocks(z.shape, row_block, col_block)] = np.nan
    heatmap = dict(
        type="heatmap", z=z, x0=(col_block - 1) / 2, dx=col_block, y0=(row_block - 1) / 2, dy=row_block,
        zmin=0, zmax=colour_limit(z), colorscale=ATTENTION_SCALE,
        colorbar=dict(title=dict(text=value_name.split()[0]), thickness=14), hoverongaps=False,
        hovertemplate=(f"queries around %{{y:.0f}} (a block of {row_block})<br>keys around %{{x:.0f}} (a block of "
                       f"{col_block})<br>{value_name} %{{z:.4f}}<extra></extra>"),
    )
    height, width = z.shape[0] * row_block, z.shape[1] * col_block  # positions covered
    shapes = []
    if window is not None:
        rows, cols = window
        shapes.append(dict(type="rect", x0=cols.start - 0.5, x1=cols.stop - 0.5, y0=rows.start - 0.5,
                           y1=rows.stop - 0.5, line=dict(color=HIGHLIGHT_COLOR, width=2)))
    layout = base_layout(title, height=640)
    layout.update(
        shapes=shapes, plot_bgcolor=MASKED_COLOR if causal else "white",
        xaxis=dict(title=dict(text="key position (attended to)"), showgrid=False, zeroline=False,
                   range=[-0.5, width - 0.5], constrain="domain"),
        yaxis=dict(title=dict(text="query position (attending)"), showgrid=False, zeroline=False,
                   range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain"),
    )
    return go.Figure(data=[heatmap], layout=layout)
