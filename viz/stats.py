"""Head statistics: one metric as a layers x heads heatmap, and every metric as a table.

A click on a heatmap cell gives Streamlit no selection, so an invisible scatter point sits on
each cell (as in viz.overview) and carries (layer, head).
"""
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from viz.theme import HIGHLIGHT_COLOR, style

SCALES = {"share": "Blues", "nats": "Viridis", "tokens": "Viridis", "l2-normalised": "Viridis"}


def stats_heatmap(values: np.ndarray, label: str, unit: str, focused: tuple[int, int], title: str,
                  baseline: float | None = None) -> go.Figure:
    """values [layers, heads] of one metric; the focused head is outlined; each cell is clickable.

    `baseline` (e.g. log n for entropy) is marked on the colour bar.
    """
    layers, heads = values.shape
    layer_ids, head_ids = np.divmod(np.arange(layers * heads), heads)
    share = unit == "share"
    colorbar = dict(title=dict(text=f"{label} ({unit})"), thickness=14)
    if baseline is not None:
        colorbar |= dict(tickvals=[baseline], ticktext=[f"uniform {baseline:.2f}"], ticks="outside")
    fig = go.Figure(go.Heatmap(
        z=values, x=list(range(heads)), y=list(range(layers)),
        # all zeros (nothing changed) still gets a scale from 0, not one centred on it
        zmin=0, zmax=1 if share else max(float(np.nanmax(values)) if values.size else 1.0, baseline or 0.0) or 1.0,
        colorscale=SCALES[unit], colorbar=colorbar, hoverinfo="skip",
        texttemplate="%{z:.2f}" if heads <= 16 else None, textfont=dict(size=11),
    ))
    fig.add_trace(go.Scatter(
        # a plain list: a numpy customdata may come back from a click as {"0": layer, "1": head}
        x=head_ids, y=layer_ids, customdata=np.stack([layer_ids, head_ids], axis=1).tolist(), text=values.ravel(),
        mode="markers", marker=dict(size=28, symbol="square", opacity=0), showlegend=False,
        hovertemplate=f"layer %{{customdata[0]}}, head %{{customdata[1]}}<br>{label} %{{text:.3f}} {unit}"
                      "<br>click to focus<extra></extra>",
    ))
    layer, head = focused
    fig.add_shape(type="rect", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                  line=dict(color=HIGHLIGHT_COLOR, width=3))
    # labelled like viz.overview: "h3" across the top, "layer 2" down the side
    fig.update_xaxes(tickvals=list(range(heads)), ticktext=[f"h{h}" for h in range(heads)], side="top",
                     showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=list(range(layers)), ticktext=[f"layer {i}" for i in range(layers)],
                     autorange="reversed", showgrid=False, zeroline=False)
    fig.update_layout(dragmode=False, clickmode="event+select")
    fig = style(fig, title, height=int(150 + 36 * layers))
    fig.update_layout(margin=dict(t=80))
    return fig


def stats_table(values: dict[str, np.ndarray], labels: dict[str, str]) -> pd.DataFrame:
    """One row per head: layer, head, then each metric (columns named by `labels`, metric key -> label)."""
    some = next(iter(values.values()))
    layer_ids, head_ids = np.divmod(np.arange(some.size), some.shape[1])
    columns = {"layer": layer_ids, "head": head_ids}
    columns |= {labels[key]: np.round(v.ravel().astype(float), 4) for key, v in values.items() if key in labels}
    return pd.DataFrame(columns)
