"""The adaptive-span mask: the formula, applying it to attention, the trainable module, savings."""
import numpy as np
import pytest
import torch

from models.span.mask import (
    AdaptiveSpanMask,
    apply_span,
    mask_curve,
    parse_spans,
    query_key_distance,
    soft_mask,
    span_savings,
)


def test_soft_mask_is_one_up_to_the_span():
    assert np.all(soft_mask([0, 3, 9.5, 10], z=10, ramp=4) == 1.0)


def test_soft_mask_is_zero_from_span_plus_ramp():
    assert np.all(soft_mask([14, 15, 100], z=10, ramp=4) == 0.0)


def test_soft_mask_is_linear_on_the_ramp():
    np.testing.assert_allclose(soft_mask([11, 12, 13], z=10, ramp=4), [0.75, 0.5, 0.25])


def test_soft_mask_with_zero_span_keeps_only_the_ramp():
    np.testing.assert_allclose(soft_mask([0, 2, 4], z=0, ramp=4), [1.0, 0.5, 0.0])


def test_soft_mask_rejects_a_ramp_of_zero():
    with pytest.raises(ValueError, match="ramp"):
        soft_mask([1], z=1, ramp=0)


def test_distance_is_signed_for_decoders_and_absolute_for_encoders():
    np.testing.assert_array_equal(query_key_distance(3, causal=True), [[0, -1, -2], [1, 0, -1], [2, 1, 0]])
    np.testing.assert_array_equal(query_key_distance(3, causal=False), [[0, 1, 2], [1, 0, 1], [2, 1, 0]])


def test_apply_span_on_a_hand_computed_causal_case():
    attention = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]], dtype=np.float32)
    # z = 0, R = 2: mask 1 at distance 0, 0.5 at distance 1, 0 at distance 2
    effect = apply_span(attention, z=0, ramp=2, causal=True)
    np.testing.assert_allclose(effect.removed, [0.0, 0.25, 0.35], atol=1e-6)
    np.testing.assert_allclose(effect.after[1], [0.25 / 0.75, 0.5 / 0.75, 0], atol=1e-6)
    np.testing.assert_allclose(effect.after[2], [0, 0.15 / 0.65, 0.5 / 0.65], atol=1e-6)
    assert effect.zeroed_share == pytest.approx(1 / 6)  # one of the six visible cells


def test_apply_span_on_an_encoder_masks_both_sides():
    attention = np.full((3, 3), 1 / 3, dtype=np.float32)
    effect = apply_span(attention, z=0, ramp=1, causal=False)
    np.testing.assert_allclose(effect.after, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(effect.removed, [2 / 3] * 3, atol=1e-6)
    assert effect.zeroed_share == pytest.approx(6 / 9)


def test_a_span_longer_than_the_text_changes_nothing():
    rng = np.random.default_rng(0)
    attention = rng.dirichlet(np.ones(5), size=5).astype(np.float32)
    effect = apply_span(attention, z=5, ramp=3, causal=False)
    np.testing.assert_allclose(effect.after, attention, atol=1e-6)
    assert effect.removed.max() < 1e-6 and effect.zeroed_share == 0


def test_module_mask_matches_the_formula():
    module = AdaptiveSpanMask(n_heads=2, max_span=8, ramp=2, init_fraction=0.25)
    mask = module.mask(6).detach().numpy()
    expected = soft_mask(query_key_distance(6, causal=True), z=2, ramp=2)
    np.testing.assert_allclose(mask[0], expected, atol=1e-6)
    np.testing.assert_allclose(mask[1], expected, atol=1e-6)


def test_module_renormalises_rows():
    module = AdaptiveSpanMask(n_heads=1, max_span=8, ramp=2)
    attention = torch.tril(torch.ones(1, 1, 6, 6))
    attention = attention / attention.sum(-1, keepdim=True)
    rows = module(attention).sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))


def test_gradients_reach_z_and_point_towards_longer_spans_when_far_keys_help():
    module = AdaptiveSpanMask(n_heads=2, max_span=8, ramp=4, init_fraction=0.25)
    attention = torch.full((1, 2, 8, 8), 1 / 8)
    attention = module(attention.tril() / attention.tril().sum(-1, keepdim=True))
    far_weight = attention[..., 7, 3].sum()  # the key 4 back, on the ramp (z = 2, R = 4)
    (-far_weight).backward()  # a loss that wants more weight on far keys
    assert module.fraction.grad is not None
    assert torch.all(module.fraction.grad < 0)


def test_span_loss_is_lambda_times_s_times_mean_z():
    module = AdaptiveSpanMask(n_heads=2, max_span=100, ramp=4)
    with torch.no_grad():
        module.fraction.copy_(torch.tensor([0.2, 0.6]))
    assert module.span_loss(0.01).item() == pytest.approx(0.01 * 100 * 0.4)


def test_clamp_keeps_the_fraction_in_zero_one():
    module = AdaptiveSpanMask(n_heads=3, max_span=10, ramp=2)
    with torch.no_grad():
        module.fraction.copy_(torch.tensor([-0.5, 0.5, 1.5]))
    module.clamp_()
    np.testing.assert_allclose(module.spans(), [0, 5, 10])


def test_savings_count_min_of_span_plus_ramp_and_s():
    # spans 0 and 100 with R = 10, S = 50: heads read 10 and 50 keys; head_dim 2
    savings = span_savings(np.array([[0.0, 100.0]]), max_span=50, ramp=10, head_dim=2)
    assert savings.mean_span == 30
    assert savings.fraction == pytest.approx(0.6)
    assert savings.flops_per_token == 60 * 4 * 2
    assert savings.full_flops_per_token == 100 * 4 * 2
    assert savings.bytes_per_token == 60 * 8 * 2


def test_mask_curve_corners_lie_on_the_formula():
    distance, value = mask_curve(z=10, ramp=4, max_span=64)
    np.testing.assert_allclose(distance, [0, 10, 14, 64])
    np.testing.assert_allclose(value, soft_mask(distance, 10, 4))
    np.testing.assert_allclose(value, [1, 1, 0, 0])


def test_mask_curve_is_cut_at_s():
    distance, value = mask_curve(z=60, ramp=8, max_span=64)
    np.testing.assert_allclose(distance, [0, 60, 64, 64])
    np.testing.assert_allclose(value[-1], 0.5)


def test_parse_spans_reads_numbers_and_names_a_bad_entry():
    assert parse_spans(" 4, 40.5;200 ,") == [4, 40.5, 200]
    assert parse_spans("") == []
    with pytest.raises(ValueError, match="'ten'"):
        parse_spans("4, ten")
    with pytest.raises(ValueError, match="'-3'"):
        parse_spans("-3")


def test_the_masked_heatmap_greys_exactly_the_cut_cells():
    from viz.adaptive_span import span_heatmap

    attention = np.full((4, 4), 0.25, dtype=np.float32)
    effect = apply_span(attention, z=1, ramp=1, causal=False)
    fig = span_heatmap(effect.after, effect.mask, list("abcd"), "after", causal=False, zmax=1.0)
    shown = np.array(fig.data[0].z, dtype=float)
    np.testing.assert_array_equal(np.isnan(shown), effect.mask == 0)
    assert fig.layout.plot_bgcolor != "white"


def test_curve_figure_marks_z_and_the_end_of_the_ramp():
    from viz.adaptive_span import Curve, mask_curves_figure

    fig = mask_curves_figure([Curve("<b>head</b>", *mask_curve(10, 4, 64))], 64, "tokens", "t", marks=(10, 14))
    assert [a.text.strip() for a in fig.layout.annotations] == ["z = 10", "z + R = 14"]
    assert fig.data[0].name == "&lt;b&gt;head&lt;/b&gt;"  # labels are escaped
