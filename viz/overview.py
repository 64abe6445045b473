"""All heads at once: a layers x heads grid of thumbnails drawn as one PNG image.

One image keeps the page small at 512 tokens (72 heads x 512 x 512 weights would be 75 MB
as numbers). An invisible scatter point over each thumbnail makes heads clickable, since a
click on a plotly image or heatmap gives Streamlit no selection.
"""
import base64
import functools
import io
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import sample_colorscale

from viz.theme import ATTENTION_SCALE, HIGHLIGHT_COLOR, base_layout

GAP = 6  # pixels between thumbnails: room for the focus outline, which must not cover a head's edge
TARGET_WIDTH = 1100  # pixels of the whole grid, whatever the head count
OUTLINE_WIDTH = 2  # screen pixels; the grid shows at ~0.5-1 screen pixel per image pixel
PALETTE_LEVELS = 255  # colour levels of a thumbnail; palette index 255 is the white gap


@dataclass(frozen=True)
class ThumbnailGrid:
    png: bytes
    cell: int  # thumbnail side in pixels
    layers: int
    heads: int


def thumbnail_cell(heads: int) -> int:
    """The side of one thumbnail in pixels: the grid is about TARGET_WIDTH wide."""
    return int(np.clip(TARGET_WIDTH // heads - GAP, 16, 96))


@functools.cache  # sampling the colour scale costs more than the PNG itself
def _palette(scale: str) -> bytes:
    """PALETTE_LEVELS colours of `scale`, then white for the gaps, as PIL's flat RGB bytes."""
    colors = sample_colorscale(scale, list(np.linspace(0, 1, PALETTE_LEVELS)), colortype="tuple")
    rgb = (np.array(colors) * 255).round().astype(np.uint8)  # [PALETTE_LEVELS, 3]
    return np.vstack([rgb, [255, 255, 255]]).astype(np.uint8).tobytes()


def thumbnail_grid(thumbnails: np.ndarray) -> ThumbnailGrid:
    """thumbnails [layers, heads, q, k] -> PNG grid; each head scaled to its own maximum.

    Pass thumbnails mean-pooled to at most thumbnail_cell(heads) a side (models.analysis.numerics.pooled):
    each is stretched or sampled to the cell by nearest neighbour. The image is a palette PNG
    (one byte a pixel), which encodes several times faster and smaller than RGB.
    """
    layers, heads, q, k = thumbnails.shape
    cell = thumbnail_cell(heads)
    peak = np.maximum(thumbnails.max(axis=(2, 3), keepdims=True), 1e-9)
    levels = np.rint((PALETTE_LEVELS - 1) * thumbnails / peak).astype(np.uint8)  # [layers, heads, q, k]
    rows, cols = np.arange(cell) * q // cell, np.arange(cell) * k // cell
    cells = levels[:, :, rows][:, :, :, cols]  # [layers, heads, cell, cell]
    canvas = np.full((layers, cell + GAP, heads, cell + GAP), PALETTE_LEVELS, np.uint8)  # gap = white
    canvas[:, :cell, :, :cell] = cells.transpose(0, 2, 1, 3)
    image = Image.fromarray(canvas.reshape(layers * (cell + GAP), heads * (cell + GAP))[:-GAP, :-GAP])
    image.putpalette(_palette(ATTENTION_SCALE))  # L -> P
    buffer = io.BytesIO()
    # level 6: 3x the time for 10% fewer bytes. Run-length deflate (Z_RLE) is 2 ms faster at 512
    # tokens but can't see repeated rows, so short texts' stretched thumbnails grew 2.4x
    image.save(buffer, format="PNG", compress_level=1)
    return ThumbnailGrid(png=buffer.getvalue(), cell=cell, layers=layers, heads=heads)


def heads_overview(grid: ThumbnailGrid, focused: tuple[int, int], title: str) -> go.Figure:
    """The grid with the focused (layer, head) outlined; each thumbnail is a clickable point."""
    step = grid.cell + GAP
    centres = np.arange(max(grid.layers, grid.heads)) * step + grid.cell / 2
    layer_ids, head_ids = np.divmod(np.arange(grid.layers * grid.heads), grid.heads)
    image = dict(type="image", source="data:image/png;base64," + base64.b64encode(grid.png).decode(),
                 x0=0, y0=0, dx=1, dy=1, hoverinfo="skip")
    points = dict(
        type="scatter", x=centres[head_ids], y=centres[layer_ids],
        # plain lists: a typed array would reach Streamlit's selection as a dict
        customdata=np.stack([layer_ids, head_ids], axis=1).tolist(),
        mode="markers", marker=dict(size=grid.cell, symbol="square", opacity=0),
        hovertemplate="layer %{customdata[0]}, head %{customdata[1]}<br>click to focus<extra></extra>",
        showlegend=False,
    )
    layer, head = focused
    # pixel i of the image spans [i - 0.5, i + 0.5]: the outline runs down the middle of the gaps
    # around the cell, so it never hides the focused head's first or last row and column
    x0, y0 = head * step - 0.5 - GAP / 2, layer * step - 0.5 - GAP / 2
    outline = dict(type="rect", x0=x0, x1=x0 + step, y0=y0, y1=y0 + step,
                   line=dict(color=HIGHLIGHT_COLOR, width=OUTLINE_WIDTH))
    layout = base_layout(title, height=int(90 + 760 * min(grid.layers / grid.heads, 1.2)))
    layout.update(
        shapes=[outline], dragmode=False, clickmode="event+select",
        xaxis=dict(side="top", tickvals=centres[:grid.heads].tolist(), ticktext=[f"h{h}" for h in range(grid.heads)],
                   tickangle=0, showgrid=False, zeroline=False),
        yaxis=dict(tickvals=centres[:grid.layers].tolist(), ticktext=[f"layer {i}" for i in range(grid.layers)],
                   showgrid=False, zeroline=False, scaleanchor="x", autorange="reversed"),
    )
    layout["margin"] = {**layout["margin"], "t": 70}
    return go.Figure(data=[image, points], layout=layout)
