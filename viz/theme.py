"""Shared look of every figure: colours, fonts, and the export settings of the modebar."""
import re

import plotly.graph_objects as go

from viz.labels import escape

ATTENTION_SCALE = "Blues"  # weights in [0, 1]: one hue, light to dark
MASKED_COLOR = "#d9d9d9"  # cells a query may not see (causal future, sparse pattern)
HIGHLIGHT_COLOR = "#e4572e"
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13)


def file_stem(*parts: object) -> str:
    """A safe, readable file name from parts, e.g. ('attention', 'minilm', 'L2', 'H5')."""
    text = "_".join(str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120] or "figure"


def plotly_config(name: str) -> dict:
    """Modebar config: the camera button saves a 3x-resolution PNG named after the view."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": file_stem(name), "scale": 3},
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    }


def style(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Apply the shared look; `title` is plain text (escaped here)."""
    fig.update_layout(
        title=dict(text=escape(title), x=0, xanchor="left"),
        font=FONT,
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        plot_bgcolor="white",
    )
    return fig
