"""Shared look of every figure: colours, fonts, and the export settings of the modebar."""
import re

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from viz.labels import escape

ATTENTION_SCALE = "Blues"  # weights in [0, 1]: one hue, light to dark
MASKED_COLOR = "#d9d9d9"  # cells a query may not see (causal future, sparse pattern)
HIGHLIGHT_COLOR = "#e4572e"
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13)
HEAD_COLORS = qualitative.Dark24  # 24: every head of a 12-head layer its own colour


def head_color(head: int) -> str:
    """Head h's colour, the same in every figure that draws one line or bar per head."""
    return HEAD_COLORS[head % len(HEAD_COLORS)]


def file_stem(*parts: object) -> str:
    """A safe, readable file name from parts, e.g. ('attention', 'minilm', 'L2', 'H5')."""
    text = "_".join(str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120] or "figure"


IMAGE_FORMATS = ("png", "svg")  # what plotly.js can save in the browser, without a server or network


def plotly_config(name: str, image_format: str = "png") -> dict:
    """Modebar config: the camera button saves the view as a 3x-resolution PNG (or an SVG) named after it."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {image_format!r} is not one of {IMAGE_FORMATS}")
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": image_format, "filename": file_stem(name), "scale": 3},
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    }


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks (10, 20, 50, 100, ...) from lo to hi; powers of ten alone over more than 3 decades."""
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    multiples = (1, 2, 5) if len(decades) <= 4 else (1,)
    return [m * 10**e for e in decades for m in multiples if lo <= m * 10**e <= hi]


def base_layout(title: str, height: int) -> dict:
    """The shared look as a layout dict; `title` is plain text (escaped here). Figures drawn on
    every rerun are built in one go from it: each later fig.update_* costs milliseconds."""
    return dict(
        title=dict(text=escape(title), x=0, xanchor="left"),
        font=FONT,
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        plot_bgcolor="white",
    )


def style(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Apply the shared look to a built figure."""
    return fig.update_layout(**base_layout(title, height))


# --- lecture mode: a projector at the back of a hall ---
LECTURE_KEY = "lecture"  # URL / session key of the presentation switch, read by every page
LECTURE_SCALE = 1.5  # fonts and figure heights grow by this much
PROJECTOR_INK = "#1a1a1a"  # Streamlit's light grey axis text washes out on a projector
LECTURE_CSS = """
<style>
  .stMainBlockContainer { max-width: 100%; padding-top: 2.5rem; }
  .stMainBlockContainer h1 { font-size: 3.4rem !important; }
  .stMainBlockContainer h2, .stMainBlockContainer h3 { font-size: 2.2rem !important; }
  .stMainBlockContainer p, .stMainBlockContainer label, .stMainBlockContainer li,
  .stMainBlockContainer button, .stMainBlockContainer input { font-size: 1.35rem !important; }
  .stMainBlockContainer [data-testid="stCaptionContainer"] p { font-size: 1.15rem !important; }
  /* a slider's value sits above its thumb at a fixed offset made for small type: anchor it by its
     bottom instead, and make room for it under the label */
  .stMainBlockContainer [data-testid="stSlider"] [role="group"] { margin-top: 1rem; }
  .stMainBlockContainer [data-testid="stSliderThumbValue"] { top: auto !important; bottom: 100%; }
  .stMainBlockContainer [data-testid="stSliderThumbValue"] p { line-height: 1.2; }
  [data-testid="stToolbar"], [data-testid="stDecoration"] { display: none; }
</style>
"""


def for_projector(fig: go.Figure) -> go.Figure:
    """Larger text, thicker colour bars and a taller figure, readable from the back of a lecture hall."""
    size = FONT["size"] * LECTURE_SCALE
    fig.update_layout(
        font=dict(size=size),
        title=dict(font=dict(size=size * 1.3)),
        height=int((fig.layout.height or 450) * LECTURE_SCALE * 0.9),
        margin=dict(t=int(50 * LECTURE_SCALE)),
        legend=dict(font=dict(size=size * 0.85, color=PROJECTOR_INK)),
    )
    # axis fonts are set explicitly: Streamlit's plotly theme would keep its own small ones
    ticks, titles = dict(size=size * 0.85, color=PROJECTOR_INK), dict(size=size, color=PROJECTOR_INK)
    fig.update_xaxes(tickfont=ticks, title_font=titles)
    fig.update_yaxes(tickfont=ticks, title_font=titles)
    fig.update_traces(selector=dict(type="heatmap"), colorbar=dict(thickness=24, tickfont=dict(color=PROJECTOR_INK),
                                                                   title=dict(font=dict(color=PROJECTOR_INK))))
    return fig
