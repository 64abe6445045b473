"""models.series_stats and its figures: a checkpoint series' head statistics over steps and
each checkpoint's divergence from the final one."""
from pathlib import Path

import numpy as np
import pytest

from models import RunError, load_model, run_attention
from models.analysis.head_stats import HeadMetric, head_statistics
from models.checkpoints.discovery import SeriesError
from models.compare.divergence import head_divergence
from models.compare.series import run_series, series_checkpoints, series_statistics
from models.core.run import AttentionRun
from models.core.settings import Settings
from tests.tiny_models import SERIES_STEPS, save_tiny_series
from viz.compare import divergence_from_final_figure, series_panels

TEXT = "The cat sat on the mat, didn't it?"


@pytest.fixture(scope="module")
def series_folder(tmp_path_factory) -> Path:
    return save_tiny_series(tmp_path_factory.mktemp("series"))


def fake_run(attentions: np.ndarray, tokens: list[str]) -> AttentionRun:
    n = len(tokens)
    special = np.array([t in ("[CLS]", "[SEP]") for t in tokens])
    return AttentionRun("fake", tokens, attentions.astype(np.float32), False, np.where(special, -1, 0).astype(np.int8),
                        special, n, tokens)


def test_checkpoints_are_ordered_by_step_and_incomplete_ones_left_out(tmp_path):
    for name in ("checkpoint-9", "checkpoint-100", "checkpoint-10", "checkpoint-5"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        if name != "checkpoint-5":  # still being written: no weights yet
            (tmp_path / name / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "runs").mkdir()
    checkpoints, problems = series_checkpoints(tmp_path)
    assert [(c.step, c.spec) for c in checkpoints] == [(9, str(tmp_path / "checkpoint-9")),
                                                       (10, str(tmp_path / "checkpoint-10")),
                                                       (100, str(tmp_path / "checkpoint-100"))]
    assert problems == ["checkpoint-5 has no weights file (model.safetensors or pytorch_model.bin): it is incomplete."]


def test_a_folder_without_a_series_is_explained(tmp_path):
    with pytest.raises(SeriesError, match="does not exist"):
        series_checkpoints(tmp_path / "missing")
    with pytest.raises(SeriesError, match="holds no usable checkpoint-N folders"):
        series_checkpoints(tmp_path)
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "config.json").write_text("{}")
    (tmp_path / "checkpoint-3" / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(SeriesError, match="holds 1 usable checkpoint-N folder; a series needs at least two"):
        series_checkpoints(tmp_path)


def test_a_server_lists_and_loads_series_only_in_its_allowed_folders(tmp_path, series_folder):
    elsewhere = Settings(allowed_folders=(tmp_path,))
    with pytest.raises(SeriesError, match="doesn't read checkpoint series from"):
        series_checkpoints(series_folder, elsewhere)
    checkpoints, _ = series_checkpoints(series_folder, Settings(allowed_folders=(series_folder,)))
    with pytest.raises(SeriesError, match="doesn't load models from"):
        run_series(checkpoints, TEXT, settings=elsewhere)
    with pytest.raises(RunError, match="runs at most 10"):
        run_series(checkpoints, TEXT, settings=Settings(allowed_folders=None, max_text_chars=10))


def test_a_checkpoint_that_fails_to_load_is_left_out_and_the_others_run(tmp_path):
    folder = save_tiny_series(tmp_path, steps=(10, 20, 30))
    weights = folder / "checkpoint-20" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # passes discovery, fails to load
    checkpoints, problems = series_checkpoints(folder)
    assert len(checkpoints) == 3 and not problems
    ran = run_series(checkpoints, TEXT)
    assert ran.steps == [10, 30] and len(ran.runs) == 2
    assert len(ran.left_out) == 1 and ran.left_out[0].startswith("step 20: Couldn't load the model")
    weights.unlink()
    (folder / "checkpoint-30" / "config.json").write_text('{"model_type": "bert", "hidden_size": 30}')
    with pytest.raises(SeriesError, match="1 of the series' 3 checkpoints ran on this text; a series needs at "
                                          "least two. step 20: .* step 30: Couldn't load"):
        run_series(checkpoints, TEXT)


def test_statistics_and_divergence_on_hand_made_runs():
    tokens = ["[CLS]", "a", "b", ".", "[SEP]"]
    rng = np.random.default_rng(0)
    stacks = [rng.dirichlet(np.ones(5) * alpha, size=(2, 3, 5)) for alpha in (5.0, 1.0, 0.2)]
    series = series_statistics([fake_run(s, tokens) for s in stacks], [0, 50, 500])
    assert series.steps == [0, 50, 500] and series.values[HeadMetric.ENTROPY].shape == (3, 2, 3)
    for index, stack in enumerate(stacks):
        expected = head_statistics(stack.astype(np.float32), tokens, np.array([1, 0, 0, 0, 1], bool))
        for key, values in expected.values.items():
            np.testing.assert_allclose(series.values[key][index], values, rtol=1e-5)
    assert (series.divergence[-1] == 0).all()  # the final checkpoint against itself
    np.testing.assert_allclose(series.divergence[0], head_divergence(stacks[0].astype(np.float32),
                                                                     stacks[2].astype(np.float32)), rtol=1e-5)
    np.testing.assert_allclose(series.layer_divergence, series.divergence.mean(axis=-1))
    assert series.uniform_entropy == pytest.approx(np.log(5))
    assert [m.key for m in series.available()][:3] == [HeadMetric.ENTROPY, HeadMetric.MEAN_DISTANCE,
                                                        HeadMetric.TO_FIRST_SPECIAL]


def test_runs_of_another_tokenizer_are_not_a_series():
    run = fake_run(np.full((1, 1, 3, 3), 1 / 3), ["[CLS]", "a", "[SEP]"])
    other = fake_run(np.full((1, 1, 3, 3), 1 / 3), ["<s>", "a", "</s>"])
    with pytest.raises(SeriesError, match="step 1 doesn't match the final one"):
        series_statistics([other, run], [1, 2])


def test_a_saved_series_is_run_checkpoint_by_checkpoint(series_folder):
    checkpoints, problems = series_checkpoints(series_folder)
    assert [c.step for c in checkpoints] == list(SERIES_STEPS) and not problems
    ran = run_series(checkpoints, TEXT)
    assert ran.steps == list(SERIES_STEPS) and not ran.left_out
    series = series_statistics(ran.runs, ran.steps)
    # reference: each checkpoint loaded and run on its own
    first = run_attention(load_model(str(series_folder / "checkpoint-10")), TEXT)
    final = run_attention(load_model(str(series_folder / "checkpoint-1000")), TEXT)
    np.testing.assert_allclose(series.divergence[0], head_divergence(first.attentions, final.attentions), atol=1e-6)
    assert (series.layer_divergence[0] > series.layer_divergence[-1]).all()
    entropy = series.values[HeadMetric.ENTROPY].mean(axis=(1, 2))
    assert entropy[0] > entropy[-1]  # wider initial weights: sharper attention at later "steps"


def test_series_figures():
    values = np.arange(3 * 4 * 2, dtype=float).reshape(3, 4, 2)
    fig = series_panels(values, [10, 100, 1000], "entropy", "nats", "title", baseline=1.5)
    lines = [t for t in fig.data if t.type == "scatter"]
    assert len(lines) == 4 * 2 and [t.name for t in lines[:2]] == ["h0", "h1"]
    np.testing.assert_array_equal(lines[3].y, values[:, 1, 1])  # layer 1, head 1
    assert fig.layout.xaxis.type == "log" and len(fig.layout.annotations) == 4  # one title per layer panel
    divergence = divergence_from_final_figure(values[:, :, 0], [0, 1, 2], "title")
    assert len(divergence.data) == 4 and divergence.layout.xaxis.type == "linear"
    many_steps = [20, 50, 100, 200, 350, 500, 750, 1000]  # a tick each would overlap: 1-2-5 ticks instead
    panels = series_panels(np.zeros((8, 1, 1)), many_steps, "entropy", "nats", "title")
    assert list(panels.layout.xaxis.tickvals) == [20, 50, 100, 200, 500, 1000]
