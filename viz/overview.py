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
GRID_HEIGHT = 760  # screen pixels the grid is drawn in per layer-to-head ratio, up to MAX_RATIO
MAX_RATIO = 1.2  # a taller grid (more layers than heads) is drawn MAX_RATIO x GRID_HEIGHT high
OUTLINE_WIDTH = 2  # screen pixels; the grid shows at ~0.5-1 screen pixel per image pixel
PALETTE_LEVELS = 255  # colour levels of a thumbnail; palette index 255 is the white gap


@dataclass(frozen=True)
class ThumbnailGrid:
    png: bytes
    cell: int  # thumbnail side in pixels
    layers: int
    heads: int


def thumbnail_cell(layers: int, heads: int) -> int:
    """The side of one thumbnail in pixels: the grid is about TARGET_WIDTH wide, and at most twice
    as tall as heads_overview draws it (half a screen pixel per image pixel, one a device pixel
    on a 2x screen): the browser would sample a taller image's extra pixels away."""
    tallest = int(2 * GRID_HEIGHT * MAX_RATIO) // layers
    return int(np.clip(min(TARGET_WIDTH // heads, tallest) - GAP, 16, 96))


@functools.cache  # sampling the colour scale costs more than the PNG itself
def _palette(scale: str) -> bytes:
    """PALETTE_LEVELS colours of `scale`, then white for the gaps, as PIL's flat RGB bytes."""
    colors = sample_colorscale(scale, list(np.linspace(0, 1, PALETTE_LEVELS)), colortype="tuple")
    rgb = (np.array(colors) * 255).round().astype(np.uint8)  # [PALETTE_LEVELS, 3]
    return np.vstack([rgb, [255, 255, 255]]).astype(np.uint8).tobytes()


def thumbnail_grid(thumbnails: np.ndarray) -> ThumbnailGrid:
    """thumbnails [layers, heads, q, k] -> PNG grid; each head scaled to its own maximum.

    Pass thumbnails mean-pooled to at most thumbnail_cell(layers, heads) a side (models.analysis.numerics.pooled):
    each is stretched or sampled to the cell by nearest neighbour. The image is a palette PNG
    (one byte a pixel), which encodes several times faster and smaller than RGB.
    """
    layers, heads, q, k = thumbnails.shape
    cell = thumbnail_cell(layers, heads)
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


def kv_groups(heads: int, kv_heads: int) -> list[range]:
    """The query heads of each key/value head under grouped-query attention (consecutive heads
    share one, as transformers' repeat_kv does); one group per head without it."""
    size = heads // kv_heads if kv_heads and heads % kv_heads == 0 else 1
    return [range(start, start + size) for start in range(0, heads, size)]


def _heads_text(heads: range) -> str:
    return f"head {heads[0]}" if len(heads) == 1 else f"heads {heads[0]}–{heads[-1]}"


def kv_group_marks(groups: list[range], step: float, bottom: float) -> tuple[list[dict], list[dict]]:
    """(shapes, annotations) marking grouped-query attention on a grid of columns `step` wide whose
    image ends at y = `bottom`: a grey line down the gap between two groups, and under each group's
    columns its key/value head ("kv 1"). Nothing when every head has its own."""
    if all(len(group) == 1 for group in groups):
        return [], []
    shapes = [dict(type="line", x0=g[0] * step - GAP / 2 - 0.5, x1=g[0] * step - GAP / 2 - 0.5, y0=-0.5,
                   y1=bottom, line=dict(color="#8c8c8c", width=2)) for g in groups[1:]]
    annotations = [dict(x=(g[0] * step + (g[-1] + 1) * step - GAP - 1) / 2, y=bottom, xref="x", yref="y",
                        yanchor="top", yshift=-4, showarrow=False, text=f"kv {index}",
                        hovertext=f"key/value head {index}, read by {_heads_text(g)}")
                   for index, g in enumerate(groups)]
    return shapes, annotations


def heads_overview(grid: ThumbnailGrid, focused: tuple[int, int], title: str, kv_heads: int | None = None) -> go.Figure:
    """The grid with the focused (layer, head) outlined; each thumbnail is a clickable point.

    With `kv_heads` key/value heads (grouped-query attention, fewer than the query heads), lines
    part the query heads that share one, each group is named under the grid ("kv 1") and in the hover."""
    step = grid.cell + GAP
    centres = np.arange(max(grid.layers, grid.heads)) * step + grid.cell / 2
    layer_ids, head_ids = np.divmod(np.arange(grid.layers * grid.heads), grid.heads)
    groups = kv_groups(grid.heads, kv_heads or grid.heads)
    group_of = np.repeat(np.arange(len(groups)), [len(g) for g in groups])  # [heads]
    shared = [f" · key/value head {group_of[h]} ({_heads_text(groups[group_of[h]])})" if len(groups[0]) > 1 else ""
              for h in range(grid.heads)]
    image = dict(type="image", source="data:image/png;base64," + base64.b64encode(grid.png).decode(),
                 x0=0, y0=0, dx=1, dy=1, hoverinfo="skip")
    points = dict(
        type="scatter", x=centres[head_ids], y=centres[layer_ids],
        # plain lists: a typed array would reach Streamlit's selection as a dict
        customdata=np.stack([layer_ids, head_ids], axis=1).tolist(), text=[shared[h] for h in head_ids],
        mode="markers", marker=dict(size=grid.cell, symbol="square", opacity=0),
        hovertemplate="layer %{customdata[0]}, head %{customdata[1]}%{text}<br>click to focus<extra></extra>",
        showlegend=False,
    )
    layer, head = focused
    # pixel i of the image spans [i - 0.5, i + 0.5]: the outline runs down the middle of the gaps
    # around the cell, so it never hides the focused head's first or last row and column
    x0, y0 = head * step - 0.5 - GAP / 2, layer * step - 0.5 - GAP / 2
    outline = dict(type="rect", x0=x0, x1=x0 + step, y0=y0, y1=y0 + step,
                   line=dict(color=HIGHLIGHT_COLOR, width=OUTLINE_WIDTH))
    bottom, right = grid.layers * step - GAP - 0.5, grid.heads * step - GAP - 0.5  # the image's far edges
    marks, labels = kv_group_marks(groups, step, bottom)
    grid_height = GRID_HEIGHT * min(grid.layers / grid.heads, MAX_RATIO)
    layout = base_layout(title, height=int(90 + grid_height) + (20 if marks else 0))
    layout.update(
        shapes=marks + [outline], annotations=labels, dragmode=False, clickmode="event+select",
        # ranges fixed to the image: autorange would pad them for the (invisible) markers' screen size
        xaxis=dict(side="top", tickvals=centres[:grid.heads].tolist(), ticktext=[f"h{h}" for h in range(grid.heads)],
                   tickangle=0, showgrid=False, zeroline=False, range=[-0.5 - GAP / 2, right + GAP / 2]),
        yaxis=dict(tickvals=centres[:grid.layers].tolist(), ticktext=[f"layer {i}" for i in range(grid.layers)],
                   showgrid=False, zeroline=False, scaleanchor="x", range=[bottom + GAP / 2, -0.5 - GAP / 2]),
    )
    layout["margin"] = {**layout["margin"], "t": 70, "b": 30 if marks else 10}
    return go.Figure(data=[image, points], layout=layout)
