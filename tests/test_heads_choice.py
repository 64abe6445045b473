"""Which heads to switch off (text for links, toggling, picking by a statistic), several stacks at once,
and what a model predicts in one form for every kind of model (models.interventions.selection, .outcome)."""
import numpy as np
import pytest
import torch
from transformers import pipeline

from models import RunError, load_model, run_attention
from models.core.predictions import NoMaskError
from models.interventions.ablation import ablated, ablated_stacks
from models.interventions.outcome import NoPredictions, predictions, readable_tokens
from models.interventions.selection import heads_text, parse_heads, ranked_heads, toggled

COUNTS = (4, 4, 4)  # 3 layers of 4 heads


@pytest.fixture(scope="module")
def loaded_models(tiny_models):
    return {kind: load_model(str(tiny_models[kind])) for kind in ("bert", "llama", "t5")}


@pytest.mark.parametrize(("text", "heads", "malformed", "out_of_range"), [
    ("", [], [], []),
    ("2.3,0.1", [(0, 1), (2, 3)], [], []),
    (" 0.1 ; 0.1,  1.0 ", [(0, 1), (1, 0)], [], []),
    ("0.1,x,1.,3.0,0.4,-1.2,1.2.3", [(0, 1)], ["x", "1.", "-1.2", "1.2.3"], ["3.0", "0.4"]),
])
def test_heads_are_read_from_text_and_what_is_not_a_head_is_listed(text, heads, malformed, out_of_range):
    parsed = parse_heads(text, COUNTS)
    assert (parsed.heads, parsed.malformed, parsed.out_of_range) == (heads, malformed, out_of_range)


def test_what_is_not_a_head_is_quoted_back_in_the_order_typed():
    assert parse_heads("9.9, x, 0.1, 3.0, -1", COUNTS).rejected == ["9.9", "x", "3.0", "-1"]


def test_heads_are_written_sorted_without_repeats_and_read_back():
    heads = [(2, 3), (0, 1), (2, 3), (10, 0)]
    assert heads_text(heads) == "0.1,2.3,10.0"
    assert parse_heads(heads_text(heads), (4,) * 11).heads == [(0, 1), (2, 3), (10, 0)]
    assert heads_text([]) == ""


def test_layers_may_have_different_head_counts():
    assert parse_heads("0.5,1.5", (8, 4)).out_of_range == ["1.5"]


def test_toggling_adds_a_head_or_removes_it():
    assert toggled([(1, 2)], (0, 3)) == [(0, 3), (1, 2)]
    assert toggled([(0, 3), (1, 2)], (0, 3)) == [(1, 2)]


def test_ranking_picks_the_highest_or_lowest_and_never_nan():
    values = np.array([[0.1, 0.9, np.nan], [0.5, 0.9, 0.0]])
    assert ranked_heads(values, 3) == [(0, 1), (1, 1), (1, 0)]  # a tie goes to the earlier head
    assert ranked_heads(values, 2, highest=False) == [(1, 2), (0, 0)]
    assert len(ranked_heads(values, 10)) == 5 and ranked_heads(values, 0) == []


def test_ablated_stacks_is_the_nested_blocks(loaded_models):
    t5, text = loaded_models["t5"], "The cat sat on the mat."
    with ablated(t5, [(0, 1)], stack="encoder"), ablated(t5, [(1, 2)], stack="cross"):
        nested = run_attention(t5, text)
    with ablated_stacks(t5, {"encoder": [(0, 1)], "cross": [(1, 2)]}):
        together = run_attention(t5, text)
    np.testing.assert_array_equal(together.cross_attentions, nested.cross_attentions)
    np.testing.assert_array_equal(together.decoder_attentions, nested.decoder_attentions)
    with ablated_stacks(t5, {}):
        same = run_attention(t5, text)
    np.testing.assert_array_equal(same.cross_attentions, run_attention(t5, text).cross_attentions)
    assert not np.array_equal(together.cross_attentions, same.cross_attentions)


def test_a_causal_lm_predicts_the_next_token_from_its_last_logits(loaded_models):
    llama, text = loaded_models["llama"], "The cat sat on the"
    ids = llama.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = llama.model(input_ids=ids).logits[0, -1].softmax(-1)
    (prediction,) = predictions(llama, text, top_k=3)
    assert prediction.where == "next token"
    assert [c.token_id for c in prediction.top] == expected.topk(3).indices.tolist()
    token = prediction.top[1].token_id
    assert prediction.probability(token) == pytest.approx(expected[token].item(), rel=1e-6)
    assert prediction.rank(token) == 2 and prediction.rank(prediction.top[0].token_id) == 1


def test_a_masked_lm_predicts_each_mask_as_the_pipeline_does(loaded_models):
    bert, text = loaded_models["bert"], "The [MASK] sat on the [MASK]."
    expected = pipeline("fill-mask", model=bert.model, tokenizer=bert.tokenizer)(text, top_k=4)
    found = predictions(bert, text, top_k=4)
    assert [p.where for p in found] == ["mask 1", "mask 2"]
    for prediction, theirs in zip(found, expected, strict=True):
        assert [c.token_id for c in prediction.top] == [e["token"] for e in theirs]
        np.testing.assert_allclose([c.probability for c in prediction.top], [e["score"] for e in theirs], rtol=1e-6)
    assert [p.where for p in predictions(bert, "The [MASK] sat.")] == ["mask"]


def test_models_without_predictions_say_what_to_compare_instead(loaded_models, default_model):
    with pytest.raises(NoMaskError, match=r"write \[MASK\]"):
        predictions(loaded_models["bert"], "No mask here.")
    with pytest.raises(NoPredictions, match="no prediction head .*sentence embeddings"):
        predictions(default_model, "The [MASK] sat.")
    with pytest.raises(NoPredictions, match="encoder-decoder.*loss per token"):
        predictions(loaded_models["t5"], "The cat sat.")
    assert issubclass(NoPredictions, RunError)


def test_tokens_are_shown_as_the_run_labels_them(loaded_models):
    llama, text = loaded_models["llama"], "Seán likes tea."
    run = run_attention(llama, text)
    assert readable_tokens(llama, run.tokens) == run.labels
