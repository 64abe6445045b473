"""A checkpoint series' masked-LM predictions: the top-k table side by side, the candidates'
probability and rank across steps, and the training loss with the checkpoints marked."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler
from plotly.colors import qualitative, sample_colorscale

from viz.labels import display_token, escape
from viz.theme import ATTENTION_SCALE, HIGHLIGHT_COLOR, style

CANDIDATE_COLORS = qualitative.Dark24
LOG_STEPS_FROM = 10  # a log step axis once the last step is this many times the first


def topk_table(labels: list[str], tokens: list[list[str]], scores: list[list[float]]) -> Styler:
    """Rank rows x checkpoint columns ("italy  62.1%"), each cell shaded by its probability."""
    def column(values: list) -> pd.Series:
        return pd.Series(values, index=range(1, len(values) + 1))

    text = pd.DataFrame({label: column([f"{display_token(t)}  {p:.1%}" for t, p in zip(words, probabilities)])
                         for label, words, probabilities in zip(labels, tokens, scores)}).fillna("")
    shade = pd.DataFrame({label: column(probabilities) for label, probabilities in zip(labels, scores)}).fillna(0.0)
    text.index.name = "rank"
    return text.style.apply(lambda _: shade.map(_cell_css), axis=None)


def _cell_css(probability: float) -> str:
    red, green, blue = sample_colorscale(ATTENTION_SCALE, [float(np.clip(probability, 0, 1))], colortype="tuple")[0]
    ink = "white" if probability > 0.5 else "black"
    return f"background-color: rgb({red * 255:.0f}, {green * 255:.0f}, {blue * 255:.0f}); color: {ink}"


def _step_axis(fig: go.Figure, steps: list[int | None], labels: list[str]) -> list:
    """x values: the steps (log scale when they span a wide range), or the labels when unknown."""
    if any(s is None for s in steps):
        fig.update_xaxes(title="checkpoint", type="category")
        return [escape(label) for label in labels]
    log = min(steps) > 0 and max(steps) >= LOG_STEPS_FROM * min(steps)
    fig.update_xaxes(title="training step" + (" (log scale)" if log else ""), type="log" if log else "linear")
    return list(steps)


def trajectory_figure(labels: list[str], steps: list[int | None], tokens: list[str], values: np.ndarray,
                      kind: str, log_y: bool, title: str) -> go.Figure:
    """values [candidates, checkpoints]: each candidate's probability or rank ("probability" or
    "rank") at each checkpoint, one line each; NaN (no result) leaves a gap."""
    fig = go.Figure()
    x = _step_axis(fig, steps, labels)
    number = ".2%" if kind == "probability" else ",.0f"
    for index, token in enumerate(tokens):
        name = escape(display_token(token))
        fig.add_trace(go.Scatter(
            x=x, y=values[index], mode="lines+markers", name=name,
            line=dict(color=CANDIDATE_COLORS[index % len(CANDIDATE_COLORS)], width=2.5), marker=dict(size=8),
            customdata=[escape(label) for label in labels],
            hovertemplate=f"{name}<br>%{{customdata}}<br>{kind} %{{y:{number}}}<extra></extra>",
        ))
    if kind == "rank":
        fig.update_yaxes(title="rank (1 = top prediction" + (", log scale)" if log_y else ")"),
                         type="log" if log_y else "linear", autorange="reversed")
    else:
        fig.update_yaxes(title="probability" + (" (log scale)" if log_y else ""), type="log" if log_y else "linear",
                         tickformat=".0%" if not log_y else None, rangemode="tozero" if not log_y else None)
    fig.update_layout(legend=dict(title=dict(text="candidate")))
    return style(fig, title, height=440)


def loss_figure(steps: np.ndarray, loss: np.ndarray, checkpoint_steps: list[int], checkpoint_labels: list[str],
                title: str) -> go.Figure:
    """The logged training loss over steps, with a marker where each checkpoint was saved."""
    fig = go.Figure(go.Scatter(x=steps, y=loss, mode="lines", name="training loss", line=dict(width=2),
                               hovertemplate="step %{x:,}<br>loss %{y:.3f}<extra></extra>"))
    marked = np.interp(checkpoint_steps, steps, loss) if len(steps) else np.array([])
    fig.add_trace(go.Scatter(
        x=checkpoint_steps, y=marked, mode="markers", name="checkpoint",
        marker=dict(size=12, color=HIGHLIGHT_COLOR, symbol="diamond", line=dict(color="white", width=1)),
        customdata=[escape(label) for label in checkpoint_labels],
        hovertemplate="%{customdata}<br>loss ≈ %{y:.3f}<extra></extra>",
    ))
    _step_axis(fig, [int(s) for s in steps], [])
    fig.update_yaxes(title="loss (cross-entropy on masked tokens, nats)")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return style(fig, title, height=400)
