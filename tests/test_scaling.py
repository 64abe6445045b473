"""models.scaling against exact values, scipy, torch autograd and direct vector sampling (fixed seeds),
and the figures of viz.scaling read back as data."""
import numpy as np
import pytest
import torch
from scipy import stats

from models.analysis.numerics import entropy, softmax
from models.scaling.live import NeuronView
from models.scaling.random_vectors import (
    CHUNK_ELEMENTS,
    classic_demonstration,
    dot_product_sample,
    jacobian_norm,
    log_grid,
    mean_abs_curve,
    mean_abs_dot_exact,
    mean_abs_dot_limit,
    normal_density,
    sample_dot_products,
    sample_query_scores,
    softmax_sweep,
    temperature_example,
)
from viz.scaling import (
    dot_product_histograms,
    mean_abs_figure,
    neuron_figure,
    softmax_sweep_figure,
    temperature_figure,
)
from viz.theme import MASKED_COLOR

# E|q.k| for d = 1, 4, 16, 64, 256 (REFERENCES.md)
REFERENCE = {1: 0.6366, 4: 1.5000, 16: 3.1421, 64: 6.3582, 256: 12.754}


def test_exact_mean_matches_the_reference_table_and_scipy():
    dims = np.array(list(REFERENCE))
    np.testing.assert_allclose(mean_abs_dot_exact(dims), list(REFERENCE.values()), rtol=1e-4)
    # q.k = |q| Z: E|q.k| = E|Z| E[chi_d] = sqrt(2/pi) E[chi_d]
    for d in (3, 10, 777):
        assert mean_abs_dot_exact(d) == pytest.approx(np.sqrt(2 / np.pi) * stats.chi(d).mean(), rel=1e-10)


def test_exact_mean_stays_finite_at_large_d_and_meets_its_limit():
    dims = np.array([16384, 10**6, 10**9])
    exact = mean_abs_dot_exact(dims)
    assert np.all(np.isfinite(exact))
    np.testing.assert_allclose(exact / mean_abs_dot_limit(dims), 1, atol=1e-4)
    assert mean_abs_dot_exact(1) / mean_abs_dot_limit(1) < 0.8  # the limit is only a limit


def test_sampled_mean_abs_is_within_a_few_percent_of_exact_at_d64():
    dots = sample_dot_products(64, 20_000, seed=0)
    assert np.abs(dots).mean() == pytest.approx(mean_abs_dot_exact(64), rel=0.03)
    assert dots.mean() == pytest.approx(0, abs=0.15)  # standard error 8 / sqrt(20000) = 0.06


@pytest.mark.parametrize("d", [1, 64, 1024])
def test_variance_is_d_before_and_1_after_scaling(d):
    sample = dot_product_sample(d, 10_000, seed=1)
    unscaled, scaled = sample.variances
    assert unscaled == pytest.approx(d, rel=0.06)
    assert scaled == pytest.approx(1, rel=0.06)
    np.testing.assert_allclose(sample_dot_products(d, 10_000, 1, scaled=True), sample.scaled)
    assert sample.mean_abs == pytest.approx(np.abs(sample.unscaled).mean())


def test_samples_are_reproducible_and_the_seed_matters():
    first = sample_dot_products(100, 50, seed=7)
    assert first.shape == (50,)
    np.testing.assert_array_equal(first, sample_dot_products(100, 50, seed=7))
    assert not np.allclose(first, sample_dot_products(100, 50, seed=8))


def test_large_d_is_drawn_in_chunks_with_the_right_statistics():
    d = 16384
    n = 3 * (CHUNK_ELEMENTS // d) + 5  # several chunks and a partial one
    dots = sample_dot_products(d, n, seed=2)
    assert dots.shape == (n,)
    assert dots.var() == pytest.approx(d, rel=0.15)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        sample_dot_products(0, 10, 0)
    assert sample_dot_products(8, 0, 0).shape == (0,)


def test_the_classic_demonstration_gives_about_2_5_and_80():
    classic = classic_demonstration(seed=0)
    assert list(classic.dims) == [10, 10_000] and classic.n_samples == 100
    assert classic.sampled[0] == pytest.approx(2.5, abs=0.25)
    assert classic.sampled[1] == pytest.approx(80, abs=8)
    np.testing.assert_allclose(classic.exact, [2.4609, 79.7865], rtol=1e-4)


def test_mean_abs_curve_uses_the_same_samples_as_the_histogram():
    curve = mean_abs_curve([4, 64], 300, seed=5)
    assert curve.sampled[1] == dot_product_sample(64, 300, 5).mean_abs
    np.testing.assert_allclose(curve.exact, mean_abs_dot_exact([4, 64]))


def test_softmax_entropy_and_temperature():
    scores = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    weights = softmax(scores)
    np.testing.assert_allclose(weights, torch.softmax(torch.tensor(scores), -1).numpy())
    np.testing.assert_allclose(softmax(scores, 2.0), softmax(scores / 2))
    assert entropy(weights)[1] == pytest.approx(np.log(3))
    assert entropy(np.array([1.0, 0.0, 0.0])) == 0


def test_jacobian_norm_matches_autograd():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    expected = [torch.autograd.functional.jacobian(lambda x: torch.softmax(x, -1), row).norm() for row in logits]
    np.testing.assert_allclose(jacobian_norm(softmax(logits.numpy())), torch.stack(expected).numpy(), rtol=1e-10)


def test_jacobian_norm_of_a_saturated_softmax_is_tiny_not_noise():
    # two keys, p = (1 - e, e): J = e (1 - e) [[1, -1], [-1, 1]], norm 2 e (1 - e)
    weights = softmax(np.array([0.0, -50.0]))
    eps = weights[1]
    assert jacobian_norm(weights) == pytest.approx(2 * eps * (1 - eps), rel=1e-9)
    assert jacobian_norm(np.array([1.0, 0.0, 0.0])) == 0


def test_query_scores_have_the_distribution_of_drawn_vectors():
    d, n_keys, trials = 16, 8, 4000
    shortcut = softmax(sample_query_scores(d, n_keys, trials, seed=0)).max(axis=-1)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((trials, 1, d))
    keys = rng.standard_normal((trials, n_keys, d))
    drawn = softmax((q * keys).sum(-1)).max(axis=-1)
    assert stats.ks_2samp(shortcut, drawn).pvalue > 0.01


def test_without_the_scale_softmax_saturates_and_its_gradient_vanishes():
    sweep = softmax_sweep(log_grid(1, 16384), n_keys=16, n_trials=300, seed=0)
    unscaled, scaled = sweep.unscaled, sweep.scaled
    assert list(sweep.dims) == [2**e for e in range(15)]
    assert unscaled.max_weight.median[-1] > 0.999 and unscaled.entropy.median[-1] < 1e-3
    assert unscaled.jacobian_norm.median[-1] < 1e-8 * scaled.jacobian_norm.median[-1]
    # with the scale nothing depends on d (beyond d = 1, where |q| itself is very noisy)
    for spread in (scaled.max_weight, scaled.entropy, scaled.jacobian_norm):
        assert spread.median[2:].max() / spread.median[2:].min() < 1.2
    assert np.all(unscaled.max_weight.low <= unscaled.max_weight.median)
    assert np.all(unscaled.max_weight.median <= unscaled.max_weight.high)


def test_temperature_sharpens_and_flattens():
    cold, hot = temperature_example(64, 16, 0, 0.01), temperature_example(64, 16, 0, 1000)
    assert np.all(np.diff(cold.scores) <= 0)  # largest score first
    assert cold.max_weight > 0.999 and hot.entropy == pytest.approx(np.log(16), rel=1e-3)
    np.testing.assert_allclose(cold.standard, softmax(cold.scores / 8))


def test_normal_density_is_a_density_with_the_given_variance():
    density = normal_density(64, "N(0, 64)")
    assert np.trapezoid(density.y, density.x) == pytest.approx(1, abs=1e-3)
    assert np.trapezoid(density.x**2 * density.y, density.x) == pytest.approx(64, rel=0.01)
    assert density.label == "N(0, 64)"


def test_log_grid():
    assert log_grid(1, 16) == [1, 2, 4, 8, 16]


# --- the figures (viz.scaling) read back as data ---

def test_histograms_show_the_samples_under_their_densities():
    sample = dot_product_sample(256, 500, seed=0)
    fig = dot_product_histograms(sample)
    histograms = [t for t in fig.data if t.type == "histogram"]
    np.testing.assert_array_equal(histograms[0].x, sample.unscaled)
    np.testing.assert_array_equal(histograms[1].x, sample.scaled)
    assert [t.name for t in fig.data if t.type == "scatter"] == ["N(0, 256)", "N(0, 1)"]
    assert fig.layout.title.text.startswith("500 random pairs q, k with d = 256")


def test_mean_abs_figure_is_log_log_and_marks_the_chosen_d():
    curve, chosen = mean_abs_curve([1, 16, 256], 100, seed=0), dot_product_sample(16, 100, seed=0)
    fig = mean_abs_figure(curve, chosen)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    marker = fig.data[-1]
    assert list(marker.x) == [16] and marker.y[0] == pytest.approx(curve.sampled[1])


def test_softmax_sweep_figure_has_three_panels_with_bands():
    fig = softmax_sweep_figure(softmax_sweep([1, 64, 4096], 8, 50, seed=0))
    assert fig.layout.yaxis3.type == "log"  # the Jacobian norm spans dozens of decades
    assert sum(t.showlegend is not False for t in fig.data) == 2  # one legend entry per curve
    assert sum(t.fill == "tonexty" for t in fig.data) == 6  # a band per curve per panel


def test_temperature_figure_plots_the_weights():
    example = temperature_example(64, 8, 0, 2.0)
    fig = temperature_figure(example)
    np.testing.assert_allclose(fig.data[0].y, example.weights)
    np.testing.assert_allclose(fig.data[1].y, example.standard)


def _view(bias=None) -> NeuronView:
    keys = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    query = np.array([1.0, -1.0])
    dots = keys @ query
    return NeuronView(query=query, keys=keys, products=keys * query, dots=dots, scaled=dots * 0.5, bias=bias,
                      visible=np.array([True, True, False]), weights=np.array([0.4, 0.6, 0.0]), scaling=0.5)


def test_neuron_figure_shows_every_step_and_escapes_tokens():
    tokens = ["<b>bold</b>", "<script>x</script>", "ok"]
    fig = neuron_figure(_view(), tokens, tokens[1], 1, "layer 0, head 0 (self-attention)")
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["key vectors k_j", "q × k_j (each row sums to q·k_j)", "q·k_j", "× 0.5", "softmax"]
    bars = [t for t in fig.data if t.type == "bar"]
    np.testing.assert_allclose(bars[-1].x, [0.4, 0.6, 0.0])
    assert bars[-1].marker.color[2] == MASKED_COLOR  # the hidden key is grey
    labels = [label for trace in fig.data for label in trace.y if isinstance(label, str)]
    assert "1 &lt;script&gt;x&lt;/script&gt;" in labels and not any("<" in label for label in labels)
    assert fig.layout.title.text == "Neuron view: query 1 &lt;script&gt;x&lt;/script&gt;, layer 0, head 0 (self-attention)"


def test_neuron_figure_adds_a_bias_column_when_the_model_has_one():
    fig = neuron_figure(_view(bias=np.array([0.1, -0.2, 0.0])), ["a", "b", "c"], "a", 0, "layer 0, head 0 (encoder)")
    assert "+ bias" in [a.text for a in fig.layout.annotations]
    assert len([t for t in fig.data if t.type == "bar"]) == 4
