"""Captured q, k and scores against the model itself: its projections and its own attentions."""

import numpy as np
import pytest
import torch

from models import attention_stacks, load_model, run_attention
from models.analysis.numerics import softmax
from models.core.scores import ScoresUnavailable
from models.scaling.live import head_scores, neuron_view
from tests.tiny_models import save_tiny_gemma2

TEXT, TARGET = "The animal didn't cross the street because it was too tired.", "It was late."


def _reconstructed(stack) -> np.ndarray:
    """softmax(scaled scores + bias + mask) of every head, from the stored numpy arrays."""
    layers, heads = stack.scores.shape[:2]
    return np.stack([[softmax(stack.logits(layer, head)) for head in range(heads)] for layer in range(layers)])


@pytest.mark.parametrize("kind", ["bert", "distilbert", "gpt2", "t5", "bart"])
def test_softmax_of_captured_scores_is_the_models_own_attention(tiny_models, kind):
    loaded = load_model(str(tiny_models[kind]))
    run = run_attention(loaded, TEXT, TARGET if kind in ("t5", "bart") else None, with_scores=True)
    stacks = attention_stacks(run)
    assert list(run.score_stacks) == list(stacks)
    for name, stack in run.score_stacks.items():
        np.testing.assert_allclose(_reconstructed(stack), stacks[name].attentions, atol=1e-6)
        assert stack.identity_error < 1e-6
        assert stack.scores.shape == stacks[name].attentions.shape
        assert stack.query.shape[:3] == stack.scores.shape[:3] and stack.key.shape[2] == stack.scores.shape[3]


def test_plain_runs_stay_as_they_were(tiny_models):
    loaded = load_model(str(tiny_models["gpt2"]))
    plain, scored = run_attention(loaded, TEXT), run_attention(loaded, TEXT, with_scores=True)
    assert plain.score_stacks is None and plain.scores is None
    np.testing.assert_array_equal(plain.attentions, scored.attentions)
    assert scored.scores is scored.score_stacks["self-attention"].scores


def test_raw_scores_are_q_dot_k_of_the_models_own_projections(tiny_models):
    loaded = load_model(str(tiny_models["bert"]))
    run = run_attention(loaded, TEXT, with_scores=True)
    encoded = loaded.tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        hidden = loaded.model(**encoded, output_hidden_states=True).hidden_states
        for layer, block in enumerate(loaded.model.bert.encoder.layer):
            project = block.attention.self
            q, k = (proj(hidden[layer])[0].view(run.n, 4, 8).transpose(0, 1) for proj in (project.query, project.key))
            np.testing.assert_allclose(run.scores[layer], (q @ k.transpose(1, 2)).numpy(), rtol=1e-5, atol=1e-5)
    stack = run.score_stacks["self-attention"]
    assert stack.d_head == 8 and stack.scales_by_sqrt_d(0)
    np.testing.assert_allclose(stack.scaling, 8**-0.5)


def test_decoder_scores_carry_the_causal_mask(tiny_models):
    run = run_attention(load_model(str(tiny_models["gpt2"])), TEXT, with_scores=True)
    stack = run.score_stacks["self-attention"]
    np.testing.assert_array_equal(stack.visible(1, 2), np.tril(np.ones((run.n, run.n), bool)))
    assert head_scores(stack, 1, 2).raw.size == run.n * (run.n + 1) // 2


def test_t5_does_not_scale_and_adds_a_position_bias(tiny_models):
    run = run_attention(load_model(str(tiny_models["t5"])), TEXT, TARGET, with_scores=True)
    encoder, decoder, cross = (run.score_stacks[name] for name in ("encoder", "decoder", "cross"))
    np.testing.assert_array_equal(encoder.scaling, 1.0)
    assert not encoder.scales_by_sqrt_d(0)
    assert encoder.bias is not None and decoder.bias is not None
    assert cross.bias is None  # T5 passes zeros there
    assert cross.scores.shape[2:] == (len(run.decoder_tokens), run.n)


def test_neuron_view_explains_one_row_of_the_attention(tiny_models):
    run = run_attention(load_model(str(tiny_models["gpt2"])), TEXT, with_scores=True)
    stack, query = run.score_stacks["self-attention"], 4
    view = neuron_view(stack, 1, 3, query)
    np.testing.assert_allclose(view.products.sum(axis=1), view.dots, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(view.scaled, view.dots * 8**-0.5, rtol=1e-6)
    np.testing.assert_allclose(view.weights, run.attentions[1, 3, query], atol=1e-6)
    assert view.visible.tolist() == [j <= query for j in range(run.n)]
    assert view.weights[query + 1:].sum() == 0 and view.bias is None


def test_neuron_view_of_t5_shows_the_bias(tiny_models):
    run = run_attention(load_model(str(tiny_models["t5"])), TEXT, with_scores=True)
    view = neuron_view(run.score_stacks["encoder"], 0, 1, 2)
    np.testing.assert_allclose(view.scaled, view.dots)
    np.testing.assert_allclose(softmax(view.scaled + view.bias), run.attentions[0, 1, 2], atol=1e-6)


def test_bundled_model_scores_reproduce_its_attention(default_model):
    run = run_attention(default_model, TEXT, with_scores=True)
    stack = run.score_stacks["self-attention"]
    assert run.scores.shape == (6, 12, run.n, run.n) and stack.d_head == 32
    np.testing.assert_allclose(stack.scaling, 32**-0.5)
    np.testing.assert_allclose(_reconstructed(stack), run.attentions, atol=1e-6)


def test_soft_capping_and_a_nonstandard_scale_are_detected(tmp_path):
    run = run_attention(load_model(str(save_tiny_gemma2(tmp_path / "gemma2"))), TEXT, with_scores=True)
    stack = run.score_stacks["self-attention"]
    np.testing.assert_allclose(stack.scaling, 16**-0.5)
    assert not stack.scales_by_sqrt_d(0)
    assert stack.key.shape[1] == 4  # two key heads, repeated for four query heads
    assert stack.identity_error > 1e-3  # tanh soft-capping happens after the scores we capture
    assert not stack.visible(0, 0)[6, 1]  # sliding window of 4


def test_attention_that_bypasses_the_explorer_function_is_refused(tiny_models):
    loaded = load_model(str(tiny_models["bert"]))
    block = loaded.model.bert.encoder.layer[1].attention.self
    # a model that post-processes its weights outside the attention function
    handle = block.register_forward_hook(lambda module, args, output: (output[0], output[1].clone()))
    try:
        with pytest.raises(ScoresUnavailable, match=r"attention \(self-attention\) does not go through"):
            run_attention(loaded, TEXT, with_scores=True)
        assert run_attention(loaded, TEXT).attentions.shape[0] == 2  # plain runs are unaffected
    finally:
        handle.remove()
