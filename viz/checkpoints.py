"""A checkpoint series' masked-LM predictions across steps: the candidates' probability and rank,
and the training loss with the checkpoints marked (the top-k table: viz.predictions)."""
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from viz.labels import display_token, escape
from viz.steps import step_axis
from viz.theme import HIGHLIGHT_COLOR, style

CANDIDATE_COLORS = qualitative.Dark24


def trajectory_figure(labels: list[str], steps: list[int | None], tokens: list[str], values: np.ndarray,
                      kind: str, log_y: bool, title: str) -> go.Figure:
    """values [candidates, checkpoints]: each candidate's probability or rank ("probability" or
    "rank") at each checkpoint, one line each; NaN (no result) leaves a gap."""
    fig = go.Figure()
    x = step_axis(fig, steps, labels)
    number = ".2%" if kind == "probability" else ",.0f"
    for index, token in enumerate(tokens):
        name = escape(display_token(token))
        fig.add_trace(go.Scatter(
            x=x, y=values[index], mode="lines+markers", name=name,
            line=dict(color=CANDIDATE_COLORS[index % len(CANDIDATE_COLORS)], width=2.5), marker=dict(size=8),
            customdata=[escape(label) for label in labels],
            hovertemplate=f"{name}<br>%{{customdata}}<br>{kind} %{{y:{number}}}<extra></extra>",
        ))
    scale = dict(type="log", dtick=1) if log_y else dict(type="linear")  # log: a tick per power of ten
    if kind == "rank":
        fig.update_yaxes(title="rank (1 = top prediction" + (", log scale)" if log_y else ")"), autorange="reversed",
                         tickformat=",d", **scale)
    else:
        fig.update_yaxes(title="probability" + (" (log scale)" if log_y else ""), tickformat=".3~%",
                         rangemode="tozero" if not log_y else None, **scale)
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
    step_axis(fig, [int(s) for s in steps], ticks_at=list(checkpoint_steps))
    fig.update_yaxes(title="loss (cross-entropy on masked tokens, nats)")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return style(fig, title, height=400)
