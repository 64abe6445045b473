"""Coverage and the enforced run against hand-computed cases, the dense run and the fill-mask pipeline."""
import numpy as np
import pytest
import torch
from transformers import pipeline

from models import load_model, run_attention
from models.sparse.enforce import coverage, enforceable, enforced_run, self_attention_mask
from models.sparse.patterns import build_pattern

TEXT = "The animal didn't cross the street because it was too tired."
MASKED = "The capital of Italy is [MASK]."


@pytest.fixture(scope="module")
def tiny(tiny_models):
    return {kind: load_model(str(tiny_models[kind])) for kind in ("bert", "gpt2", "t5")}


def test_coverage_by_hand():
    attentions = np.array([[[[0.5, 0.5], [0.25, 0.75]], [[1.0, 0.0], [0.0, 1.0]]]])  # [1 layer, 2 heads, 2, 2]
    diagonal = np.eye(2, dtype=bool)[None]
    assert np.allclose(coverage(attentions, diagonal), [[(0.5 + 0.75) / 2, 1.0]])
    per_head = np.stack([np.ones((2, 2), bool), np.zeros((2, 2), bool)])
    assert np.allclose(coverage(attentions, per_head), [[1.0, 0.0]])


def test_coverage_of_the_full_pattern_is_one(default_model):
    run = run_attention(default_model, TEXT)
    assert np.allclose(coverage(run.attentions, build_pattern("full", run.n)[None]), 1, atol=1e-5)
    window = coverage(run.attentions, build_pattern("sliding_window", run.n, w=1)[None])
    assert window.shape == (6, 12) and (window < 1).all() and (window > 0).all()


def test_enforceable_hides_the_future_and_gives_empty_rows_themselves():
    masks = build_pattern("fixed", 6, l=3, c=1, part="A2", causal=False)[None]  # rows see keys 2 and 5
    effective, fixed = enforceable(masks, causal=True)
    assert fixed == 2  # rows 0 and 1 have no key at or before them
    assert effective[0, 0, 0] and effective[0, 1, 1] and not effective[0, 0, 2]
    assert not np.triu(effective[0], k=1).any()
    assert (enforceable(masks, causal=False)[0] == masks).all()


def test_the_hook_only_touches_self_attention_of_its_size():
    additive = torch.zeros(1, 1, 5, 5)
    hook = self_attention_mask(additive)
    plain, cross = torch.nn.Module(), torch.nn.Module()
    cross.is_cross_attention = True
    assert hook(plain, 5, 5) is additive
    assert hook(plain, 4, 5) is None and hook(plain, 5, 4) is None and hook(plain, 4, 4) is None
    assert hook(cross, 5, 5) is None


@pytest.mark.parametrize("kind", ["bert", "gpt2", "t5"])
def test_the_full_pattern_reproduces_the_dense_run(tiny, kind):
    loaded = tiny[kind]
    run = run_attention(loaded, TEXT)
    enforced = enforced_run(loaded, TEXT, None, build_pattern("full", run.n)[None])
    np.testing.assert_allclose(enforced.cosine, 1, atol=1e-6)
    np.testing.assert_array_equal(enforced.attentions, run.attentions)
    np.testing.assert_array_equal(enforced.dense_attentions, run.attentions)
    assert enforced.tokens == run.tokens and enforced.rows_given_self == 0


def test_the_first_layer_is_the_dense_softmax_renormalised_inside_the_pattern(default_model):
    run = run_attention(default_model, TEXT)
    mask = build_pattern("sliding_window", run.n, w=2)
    enforced = enforced_run(default_model, TEXT, None, mask[None])
    inside = run.attentions[0] * mask  # layer 0 sees the same inputs dense or sparse
    np.testing.assert_allclose(enforced.attentions[0], inside / inside.sum(-1, keepdims=True), atol=1e-6)
    assert (enforced.attentions[:, :, ~mask] == 0).all()
    assert enforced.cosine[0] == pytest.approx(1.0)  # embeddings are untouched
    assert enforced.cosine[-1] < 0.999


def test_per_head_patterns_reach_their_own_heads(tiny):
    loaded = tiny["bert"]
    n = run_attention(loaded, TEXT).n
    masks = np.stack([build_pattern("sliding_window", n, w=1), build_pattern("full", n)] * 2)
    enforced = enforced_run(loaded, TEXT, None, masks)
    assert (enforced.attentions[:, 0][:, ~masks[0]] == 0).all()
    assert (enforced.attentions[:, 1] > 0).all()


def test_a_decoder_keeps_its_causal_mask_under_a_bidirectional_pattern(tiny):
    loaded = tiny["gpt2"]
    n = run_attention(loaded, TEXT).n
    enforced = enforced_run(loaded, TEXT, None, build_pattern("sliding_window", n, w=2)[None])
    assert not np.triu(enforced.attentions, k=1).any()
    assert (enforced.attentions[..., np.tril_indices(n, k=-3)[0], np.tril_indices(n, k=-3)[1]] == 0).all()


def test_mask_predictions_match_the_fill_mask_pipeline(tiny):
    loaded = tiny["bert"]
    n = run_attention(loaded, MASKED).n
    dense_only = enforced_run(loaded, MASKED, None, build_pattern("full", n)[None])
    [found] = dense_only.predictions
    assert found.position == loaded.tokenizer(MASKED)["input_ids"].index(loaded.tokenizer.mask_token_id)
    expected = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer)(MASKED)
    assert [p.token_id for p in found.dense] == [e["token"] for e in expected]
    assert [p.token for p in found.dense] == [e["token_str"] for e in expected]  # the same Candidate as fill-mask
    assert [p.probability for p in found.dense] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert found.sparse == found.dense
    windowed = enforced_run(loaded, MASKED, None, build_pattern("sliding_window", n, w=1)[None]).predictions[0]
    assert windowed.dense == found.dense and windowed.sparse != found.dense


def test_models_without_an_mlm_head_or_mask_give_no_predictions(tiny, default_model):
    n = run_attention(default_model, MASKED).n
    assert enforced_run(default_model, MASKED, None, build_pattern("full", n)[None]).predictions == ()
    assert enforced_run(tiny["bert"], TEXT, None, build_pattern("full", run_attention(tiny["bert"], TEXT).n)[None]
                        ).predictions == ()


def test_a_pattern_of_the_wrong_size_is_refused(tiny):
    with pytest.raises(ValueError, match="pattern is for 3 positions"):
        enforced_run(tiny["bert"], TEXT, None, build_pattern("full", 3)[None])
