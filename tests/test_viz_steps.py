"""viz.steps: the one training-step axis of the Checkpoints and Compare figures."""
import numpy as np

from viz.checkpoints import trajectory_figure
from viz.compare import divergence_from_final_figure, series_panels


def _trajectory(steps):
    return trajectory_figure([f"step {s}" for s in steps], steps, ["x"], np.ones((1, len(steps))), "probability",
                             False, "t")


def test_checkpoint_and_compare_figures_share_one_step_axis():
    decade = [100, 300, 1000]
    for fig in (_trajectory(decade), divergence_from_final_figure(np.zeros((3, 2)), decade, "t")):
        assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == decade
        assert fig.layout.xaxis.title.text == "training step (log scale)"
    less_than_a_decade = [100, 500, 900]
    assert _trajectory(less_than_a_decade).layout.xaxis.type == "linear"
    assert divergence_from_final_figure(np.zeros((3, 2)), less_than_a_decade, "t").layout.xaxis.type == "linear"


def test_many_checkpoints_get_one_two_five_ticks_and_panels_fewer():
    many = [10 * 2**k for k in range(14)]  # 10 ... 81920: more checkpoints than ticks
    assert list(_trajectory(many).layout.xaxis.tickvals) == [10, 100, 1000, 10000]  # > 3 decades: powers of ten
    panels = series_panels(np.zeros((8, 4, 1)), many[:8], "entropy", "nats", "t")  # 8 > a panel's 6
    assert list(panels.layout.xaxis.tickvals) == [10, 20, 50, 100, 200, 500, 1000]
    titled = [axis.title.text for axis in (panels.layout.xaxis, panels.layout.xaxis4)]
    assert titled == [None, "training step (log scale)"]  # 4 layers in 3 columns: the bottom row only
