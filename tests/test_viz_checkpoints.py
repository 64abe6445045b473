"""viz.checkpoints: the trajectories and the loss curve."""
import numpy as np
import pytest

from viz.checkpoints import loss_figure, trajectory_figure
from viz.steps import _spread

LABELS, STEPS = ["step 20", "step 200", "step 800"], [20, 200, 800]


def test_trajectories_use_log_axes_and_put_rank_one_on_top():
    values = np.array([[0.01, 0.2, np.nan], [0.5, 0.1, 0.3]])
    fig = trajectory_figure(LABELS, STEPS, ["italy", "<i>"], values, "probability", True, "Probability")
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == STEPS and fig.data[1].name == "&lt;i&gt;"
    assert np.isnan(fig.data[0].y[2])  # no result: a gap
    rank = trajectory_figure(LABELS, STEPS, ["italy"], np.array([[40, 3, 1]]), "rank", False, "Rank")
    assert rank.layout.yaxis.autorange == "reversed" and rank.layout.yaxis.type == "linear"


def test_steps_unknown_or_from_zero_change_the_axis():
    fig = trajectory_figure(["a<b", "c"], [None, None], ["x"], np.ones((1, 2)), "probability", False, "t")
    assert fig.layout.xaxis.type == "category" and list(fig.data[0].x) == ["a&lt;b", "c"]
    linear = trajectory_figure(LABELS, [0, 20_000, 2_000_000], ["x"], np.ones((1, 3)), "rank", True, "t")
    assert linear.layout.xaxis.type == "linear"


def test_crowded_step_ticks_are_thinned_keeping_the_last():
    assert _spread([20, 50, 100, 200, 350, 500, 650, 800], np.log10) == [20, 50, 100, 200, 350, 500, 800]
    assert _spread([1, 2, 3, 4], np.asarray) == [1, 2, 3, 4]


def test_the_loss_curve_marks_the_checkpoints_on_it():
    steps, loss = np.array([1, 10, 100, 1000]), np.array([6.0, 4.0, 2.0, 1.0])
    fig = loss_figure(steps, loss, [10, 550], ["step 10", "step 550"], "Loss")
    assert list(fig.data[1].x) == [10, 550]
    assert fig.data[1].y.tolist() == pytest.approx([4.0, 1.5])
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [10, 550]
