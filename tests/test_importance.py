"""Language-model loss per token, head importance (Michel et al. 2019) and the pruning curve."""
import numpy as np
import pytest
import torch

from models import load_model
from models.interventions.ablation import ablated, gated
from models.interventions.importance import curve_runs, head_importance, pruning_curve, removal_counts
from models.interventions.loss import MASK_EVERY, LossError, loss_terms, token_losses

TEXT = "The animal didn't cross the street because it was too tired."
TEXTS = (TEXT, "The capital of Italy is Rome. Paris is in France.")


@pytest.fixture(scope="module")
def loaded_models(tiny_models):
    models = {kind: load_model(str(tiny_models[kind])) for kind in ("bert", "distilbert", "gpt2", "t5", "bart")}
    for loaded in models.values():
        loaded.model.double()  # finite differences need more than float32's 7 digits
    return models


def test_causal_loss_per_token_is_the_models_own_loss(loaded_models):
    loaded = loaded_models["gpt2"]
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        output = loaded.model(input_ids=ids, labels=ids)
    result = token_losses(loaded, TEXT)
    assert np.isnan(result.losses[0]) and result.top1[0] == -1
    assert result.mean == pytest.approx(output.loss.item(), rel=1e-6)
    np.testing.assert_array_equal(result.top1[1:], output.logits[0, :-1].argmax(-1).numpy())


def test_token_ids_score_as_their_text_does(loaded_models):
    for kind in ("gpt2", "bert"):
        loaded = loaded_models[kind]
        ids = loaded.tokenizer(TEXT)["input_ids"]
        np.testing.assert_array_equal(token_losses(loaded, ids).losses, token_losses(loaded, TEXT).losses)
    with pytest.raises(LossError, match="taken on a text, not on token ids"):
        token_losses(loaded_models["t5"], ids)


def test_masked_lm_scores_each_token_masked_in_its_own_pass(loaded_models):
    loaded = loaded_models["bert"]
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    result = token_losses(loaded, TEXT)
    assert np.isnan(result.losses[[0, -1]]).all() and not np.isnan(result.losses[1:-1]).any()  # [CLS], [SEP]
    position = 9
    masked = ids.clone()
    masked[0, [p for p in range(1, ids.shape[1] - 1) if p % MASK_EVERY == position % MASK_EVERY]] = 103  # [MASK]
    with torch.inference_mode():
        log_p = loaded.model(input_ids=masked).logits[0, position].log_softmax(-1)
    assert result.losses[position] == pytest.approx(-log_p[ids[0, position]].item(), rel=1e-6)


def test_encoder_decoder_loss_is_the_decoders_own_loss(loaded_models):
    loaded = loaded_models["t5"]
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = loaded.model(input_ids=ids, labels=ids).loss.item()
    assert token_losses(loaded, TEXT).mean == pytest.approx(expected, rel=1e-6)


def test_an_encoder_without_a_head_has_no_loss(loaded_models):
    with pytest.raises(LossError, match="has no language-model head .*sentence embeddings"):
        head_importance(loaded_models["distilbert"])


def _loss_with_gates(loaded, gates: torch.Tensor, stack: str | None = None) -> float:
    with torch.inference_mode(), gated(loaded, gates, stack):
        return loss_terms(loaded, TEXT).losses().mean().item()


# cross-attention on BART: T5 computes its layer norms in float32 whatever the model's dtype
@pytest.mark.parametrize(("kind", "stack"), [("gpt2", None), ("bert", None), ("bart", "cross")])
def test_importance_is_the_loss_gradient_by_finite_differences(loaded_models, kind, stack):
    loaded, eps = loaded_models[kind], 1e-4
    importance = head_importance(loaded, [TEXT], stack=stack, normalise=False)  # [layers, heads]
    finite = np.zeros_like(importance)
    for layer, head in np.ndindex(*importance.shape):
        up, down = torch.ones(importance.shape, dtype=torch.float64), torch.ones(importance.shape, dtype=torch.float64)
        up[layer, head], down[layer, head] = 1 + eps, 1 - eps
        difference = _loss_with_gates(loaded, up, stack) - _loss_with_gates(loaded, down, stack)
        finite[layer, head] = abs(difference) / (2 * eps)
    np.testing.assert_allclose(importance, finite, rtol=1e-4, atol=1e-9)
    assert importance.max() > 1e-4


def test_importance_averages_absolute_gradients_over_texts_and_normalises_each_layer(loaded_models):
    loaded = loaded_models["gpt2"]
    each = [head_importance(loaded, [text], normalise=False) for text in TEXTS]
    raw = head_importance(loaded, TEXTS, normalise=False)
    np.testing.assert_allclose(raw, (each[0] + each[1]) / 2, rtol=1e-12)
    normalised = head_importance(loaded, TEXTS)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0)
    np.testing.assert_allclose(normalised * np.linalg.norm(raw, axis=1, keepdims=True), raw)


def test_pruning_curve_removes_the_least_important_heads_first(loaded_models):
    loaded = loaded_models["gpt2"]
    importance = np.arange(8.0)[::-1].reshape(2, 4)  # layer 1 head 3 least important
    steps = []
    curve = pruning_curve(loaded, importance, TEXTS, points=9, seeds=(0, 1), progress=lambda *s: steps.append(s))
    assert steps == [(i, 27) for i in range(1, 28)]
    assert curve_runs(8, points=9, seeds=(0, 1)) == 1 + 27  # the intact pass, then the steps
    np.testing.assert_array_equal(curve.removed, np.arange(9))
    np.testing.assert_array_equal(curve.shares, np.arange(9) / 8)
    intact = [token_losses(loaded, text) for text in TEXTS]
    assert curve.loss[0] == pytest.approx(np.nanmean(np.concatenate([t.losses for t in intact])), rel=1e-6)
    assert curve.agreement[0] == 1.0
    with ablated(loaded, [(1, 3)]):
        one_off = np.concatenate([token_losses(loaded, text).losses for text in TEXTS])
    assert curve.loss[1] == pytest.approx(np.nanmean(one_off), rel=1e-6)
    assert curve.random_loss.shape == (2, 9) and curve.random_agreement.shape == (2, 9)
    np.testing.assert_allclose(curve.random_loss[:, -1], curve.loss[-1])  # every head off, whatever the order
    assert curve.agreement[-1] < 1.0


def test_a_stack_with_few_heads_has_a_point_per_head_count():
    np.testing.assert_array_equal(removal_counts(1), [0, 1])
    np.testing.assert_array_equal(removal_counts(270), np.linspace(0, 270, 11).round())
    assert curve_runs(1) == 1 + 4 * 2
