"""All heads at once: a layers x heads grid of thumbnails drawn as one PNG image.

One image keeps the page small at 512 tokens (72 heads x 512 x 512 weights would be 75 MB
as numbers). An invisible scatter point over each thumbnail makes heads clickable, since a
click on a plotly image or heatmap gives Streamlit no selection.
"""
import base64
import io
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import sample_colorscale

from viz.theme import ATTENTION_SCALE, HIGHLIGHT_COLOR, style

GAP = 4  # pixels between thumbnails
TARGET_WIDTH = 1100  # pixels of the whole grid, whatever the head count


@dataclass(frozen=True)
class ThumbnailGrid:
    png: bytes
    cell: int  # thumbnail side in pixels
    layers: int
    heads: int


def pool(matrix: np.ndarray, size: int) -> np.ndarray:
    """Mean-pool a [q, k] matrix to at most [size, size] (uneven bins where size doesn't divide)."""
    rows = np.linspace(0, matrix.shape[0], min(size, matrix.shape[0]) + 1).astype(int)[:-1]
    cols = np.linspace(0, matrix.shape[1], min(size, matrix.shape[1]) + 1).astype(int)[:-1]
    summed = np.add.reduceat(np.add.reduceat(matrix, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, matrix.shape[0])), np.diff(np.append(cols, matrix.shape[1])))
    return summed / counts


def _lut(scale: str) -> np.ndarray:
    colors = sample_colorscale(scale, list(np.linspace(0, 1, 256)), colortype="tuple")
    return (np.array(colors) * 255).round().astype(np.uint8)  # [256, 3]


def thumbnail_grid(attentions: np.ndarray) -> ThumbnailGrid:
    """attentions [layers, heads, q, k] -> PNG grid; each head scaled to its own maximum."""
    layers, heads = attentions.shape[:2]
    cell = int(np.clip(TARGET_WIDTH // heads - GAP, 16, 96))
    lut = _lut(ATTENTION_SCALE)
    canvas = np.full((layers * (cell + GAP) - GAP, heads * (cell + GAP) - GAP, 3), 255, np.uint8)
    for layer in range(layers):
        for head in range(heads):
            pooled = pool(attentions[layer, head], cell)
            level = (255 * pooled / max(float(pooled.max()), 1e-9)).astype(np.uint8)
            rgb = Image.fromarray(lut[level]).resize((cell, cell), Image.Resampling.NEAREST)
            top, left = layer * (cell + GAP), head * (cell + GAP)
            canvas[top:top + cell, left:left + cell] = np.asarray(rgb)
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG", optimize=False, compress_level=6)
    return ThumbnailGrid(png=buffer.getvalue(), cell=cell, layers=layers, heads=heads)


def heads_overview(grid: ThumbnailGrid, focused: tuple[int, int], title: str) -> go.Figure:
    """The grid with the focused (layer, head) outlined; each thumbnail is a clickable point."""
    step = grid.cell + GAP
    source = "data:image/png;base64," + base64.b64encode(grid.png).decode()
    layer_ids, head_ids = np.divmod(np.arange(grid.layers * grid.heads), grid.heads)
    fig = go.Figure(go.Image(source=source, x0=0, y0=0, dx=1, dy=1, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=head_ids * step + grid.cell / 2,
            y=layer_ids * step + grid.cell / 2,
            # plain lists: a typed array would reach Streamlit's selection as a dict
            customdata=np.stack([layer_ids, head_ids], axis=1).tolist(),
            mode="markers",
            marker=dict(size=grid.cell, symbol="square", opacity=0),
            hovertemplate="layer %{customdata[0]}, head %{customdata[1]}<br>click to focus<extra></extra>",
            showlegend=False,
        )
    )
    layer, head = focused
    fig.add_shape(
        type="rect",
        x0=head * step - 2, x1=head * step + grid.cell + 1,
        y0=layer * step - 2, y1=layer * step + grid.cell + 1,
        line=dict(color=HIGHLIGHT_COLOR, width=3),
    )
    fig.update_xaxes(side="top", tickvals=list(np.arange(grid.heads) * step + grid.cell / 2),
                     ticktext=[f"h{h}" for h in range(grid.heads)], tickangle=0, showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=list(np.arange(grid.layers) * step + grid.cell / 2),
                     ticktext=[f"layer {i}" for i in range(grid.layers)], showgrid=False, zeroline=False,
                     scaleanchor="x", autorange="reversed")
    fig.update_layout(dragmode=False, clickmode="event+select")
    fig = style(fig, title, height=int(90 + 760 * min(grid.layers / grid.heads, 1.2)))
    fig.update_layout(margin=dict(t=70))
    return fig
