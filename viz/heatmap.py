"""One attention matrix as a token x token heatmap."""
import numpy as np
import plotly.graph_objects as go

from viz.labels import MAX_TICK_LABELS, axis_labels, tick_labels
from viz.theme import ATTENTION_SCALE, MASKED_COLOR, base_layout

WINDOW_KEY_TICKS = 32  # key labels of a long text's window, drawn across the page: about 25 px each at 1280 px


def masked_future(matrix: np.ndarray, first_query: int = 0, first_key: int = 0) -> np.ndarray:
    """matrix [q, k] (queries from `first_query`, keys from `first_key` on) with the causal future
    (key position > query position) set to NaN, drawn as 'masked'."""
    shown = matrix.astype(np.float32, copy=True)
    shown[np.triu_indices(shown.shape[0], k=1 + first_query - first_key, m=shown.shape[1])] = np.nan
    return shown


def attention_heatmap(
    matrix: np.ndarray,  # [q, k], rows are queries
    query_tokens: list[str],
    key_tokens: list[str],
    title: str,
    causal: bool = False,
    zmax: float | None = None,
    first_query: int = 0,
    first_key: int = 0,
    key_ticks: int = MAX_TICK_LABELS,
) -> go.Figure:
    """Heatmap of one head (or an aggregate); hover names query, key and weight. A window of a long
    text: `matrix` holds queries from `first_query` and keys from `first_key` on, labelled by position.
    At most `key_ticks` key labels (every k-th): they are written at a slant, so need more room than
    the query labels."""
    z = masked_future(matrix, first_query, first_key) if causal else matrix.astype(np.float32, copy=False)
    x = axis_labels(key_tokens, first_key)
    same = query_tokens == key_tokens and first_query == first_key
    y = x if same else axis_labels(query_tokens, first_query)  # self-attention: once
    heatmap = dict(
        type="heatmap", z=z, x=x, y=y, zmin=0,
        zmax=zmax if zmax is not None else float(np.nanmax(z)) if z.size else 1.0,
        colorscale=ATTENTION_SCALE,
        colorbar=dict(title=dict(text="weight"), thickness=14),
        hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>",
        hoverongaps=False,
    )
    layout = base_layout(title, height=int(min(900, max(420, 260 + 14 * min(len(y), 48)))))
    layout.update(
        xaxis=dict(title=dict(text="key (attended to)"), tickangle=-60, tickvals=tick_labels(x, key_ticks),
                   showgrid=False),
        yaxis=dict(title=dict(text="query (attending)"), autorange="reversed", tickvals=tick_labels(y),
                   showgrid=False),
    )
    if causal:
        layout["plot_bgcolor"] = MASKED_COLOR  # NaN cells show the background
    return go.Figure(data=[heatmap], layout=layout)
