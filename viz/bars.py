"""One row of an attention-like matrix as bars over the tokens: what one token draws on."""
import numpy as np
import plotly.graph_objects as go

from viz.labels import axis_labels, tick_labels
from viz.theme import ATTENTION_SCALE, style


def token_bars(weights: np.ndarray, tokens: list[str], title: str, value_name: str) -> go.Figure:
    """weights [k] over `tokens` (k of them), in text order, coloured by weight."""
    labels = axis_labels(tokens)
    fig = go.Figure(go.Bar(
        x=labels, y=weights, marker=dict(color=weights, colorscale=ATTENTION_SCALE, cmin=0,
                                         line=dict(color="#6b6b6b", width=0.5)),
        hovertemplate=f"%{{x}}<br>{value_name} %{{y:.4f}}<extra></extra>",
    ))
    fig.update_xaxes(title="input token", tickangle=-60, tickvals=tick_labels(labels), showgrid=False)
    fig.update_yaxes(title=value_name, rangemode="tozero")
    return style(fig, title, height=380)
