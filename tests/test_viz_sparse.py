"""viz.sparse: the Sparse page's cost chart reads without a legend of its axes, and its layers are
numbered as on every other page."""
import numpy as np

from models.sparse.cost import CostPoint
from viz.sparse import cosine_figure, cost_figure, path_figure


def _point(n: int) -> CostPoint:
    seconds, size = 1e-3 * (n / 256) ** 2, 2**20 * (n / 256) ** 2  # 1 ms, 1 MB at 256, growing like n²
    return CostPoint(n=n, dense_seconds=seconds, masked_seconds=1.1 * seconds, dense_bytes=int(size),
                     masked_bytes=int(1.1 * size), block_share=0.5, block_sparse_seconds=0.5 * seconds,
                     block_sparse_bytes=int(0.5 * size))


def test_cost_axes_have_titles_with_units_and_plain_number_ticks():
    fig = cost_figure([_point(n) for n in (256, 512, 1024, 2048)])
    time_axis, memory_axis = fig.layout.yaxis, fig.layout.yaxis2
    assert time_axis.title.text.startswith("time per call (ms")
    assert memory_axis.title.text.startswith("peak memory (MB")
    for axis in (time_axis, memory_axis):  # 0.5 .. 70: 1-2-5 ticks, each labelled with its value
        assert axis.type == "log"
        assert list(axis.ticktext) == ["0.5", "1", "2", "5", "10", "20", "50"]
        assert np.allclose(axis.tickvals, [0.5, 1, 2, 5, 10, 20, 50])
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        assert axis.title.text.startswith("sequence length n (tokens")
        assert list(axis.ticktext) == ["256", "512", "1,024", "2,048"]


def test_cosine_names_layers_from_zero_like_the_layer_slider():
    fig = cosine_figure(np.linspace(1, 0.5, 7))  # embeddings + 6 layers
    assert list(fig.data[0].x) == ["embeddings"] + [f"layer {k}" for k in range(6)]


def test_a_path_counts_the_layers_it_passes():
    fig = path_figure([7, 5, 3], 8)
    assert fig.layout.yaxis.title.text == "layers passed" and list(fig.layout.yaxis.tickvals) == [0, 1, 2]
