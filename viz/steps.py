"""The training-step x axis of every figure over a checkpoint series (Checkpoints and Compare pages)."""
import numpy as np
import plotly.graph_objects as go

from viz.labels import escape
from viz.theme import log_ticks

LOG_STEPS_FROM = 10  # a log step axis once the last step is this many times the first
MAX_STEP_TICKS = 12  # a tick at every checkpoint up to this many, on a page-wide figure
MIN_TICK_GAP = 0.06  # of the axis span between two tick labels


def step_axis(fig: go.Figure, steps: list[int | None], labels: list[str] = (), ticks_at: list[int] | None = None,
              max_ticks: int = MAX_STEP_TICKS, title_row: int | None = None) -> list:
    """Make fig's x axes training steps; returns the x values: the steps, or the checkpoints' `labels`
    (escaped, on a category axis) when a step is unknown.

    A log axis when the steps start above 0 and span a decade or more. Up to `max_ticks`
    checkpoints (`ticks_at`, default `steps`) get a tick each, thinned where labels would
    overlap; more get 1-2-5 ticks on a log axis, plotly's own on a linear one. The title goes
    on the axes of row `title_row` (the bottom row of small multiples), or on every x axis.
    """
    if any(s is None for s in steps):
        fig.update_xaxes(type="category")
        fig.update_xaxes(title="checkpoint", row=title_row)
        return [escape(label) for label in labels]
    ticks_at = list(steps if ticks_at is None else ticks_at)
    log = min(steps) > 0 and max(steps) >= LOG_STEPS_FROM * min(steps)
    if 0 < len(ticks_at) <= max_ticks:
        fig.update_xaxes(tickvals=_spread(ticks_at, np.log10 if log else np.asarray))
    elif log:
        fig.update_xaxes(tickvals=log_ticks(min(steps), max(steps)))
    fig.update_xaxes(type="log" if log else "linear", tickformat=",")
    fig.update_xaxes(title="training step" + (" (log scale)" if log else ""), row=title_row)
    return list(steps)


def _spread(ticks: list[int], position) -> list[int]:
    """The ticks without those crowding a later one (labels would overlap); the last is kept."""
    where = position(np.asarray(ticks, dtype=float))
    gap = MIN_TICK_GAP * (where.max() - where.min())
    kept = [len(ticks) - 1]
    for index in range(len(ticks) - 2, -1, -1):
        if where[kept[-1]] - where[index] >= gap:
            kept.append(index)
    return [ticks[i] for i in reversed(kept)]
