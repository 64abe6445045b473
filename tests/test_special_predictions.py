"""Special tokens offered as predictions (issue 17 item 4): a tiny BERT whose output bias favours
[MASK] and [PAD], and a tiny GPT-2 favouring <|endoftext|>. By default the candidates leave them
out and keep the model's probabilities; include_special=True shows them first, marked."""
import numpy as np
import pytest
import torch
from transformers import pipeline

from models import load_model, run_attention
from models.checkpoints.discovery import find_checkpoints
from models.checkpoints.series import fill_series
from models.core.predictions import fill_mask, next_token_predictions
from models.core.run import encode, model_inputs
from models.core.token_text import special_token_ids
from models.sparse.enforce import enforced_run
from models.sparse.patterns import build_pattern
from tests.tiny_models import save_tiny_bert_favouring_special, save_tiny_gpt2_favouring_special

ONE_MASK, TWO_MASKS = "The capital of [MASK] is Rome.", "The [MASK] of [MASK] is Rome."
NEXT = "The capital of Italy is"


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return load_model(str(save_tiny_bert_favouring_special(tmp_path_factory.mktemp("special") / "bert")))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return load_model(str(save_tiny_gpt2_favouring_special(tmp_path_factory.mktemp("special") / "gpt2")))


def _softmax_at(loaded, text: str, positions: list[int]) -> torch.Tensor:
    """[positions, vocab] the model's own softmax, computed here without the app."""
    with torch.inference_mode():
        logits = loaded.model(**model_inputs(loaded, encode(loaded, text)[0])).logits[0]
    return logits[positions].float().softmax(dim=-1)


def _ids(candidates) -> list[int]:
    return [c.token_id for c in candidates]


def test_special_ids_are_the_named_tokens_and_the_added_ones_marked_special(bert, gpt2):
    assert special_token_ids(bert.tokenizer) == [0, 100, 101, 102, 103]  # [PAD] [UNK] [CLS] [SEP] [MASK]
    assert special_token_ids(gpt2.tokenizer) == [0]  # <|endoftext|>


@pytest.mark.parametrize("text", [ONE_MASK, TWO_MASKS])
def test_fill_mask_leaves_special_tokens_out_and_keeps_the_models_probabilities(bert, text):
    mask, pad = bert.tokenizer.mask_token_id, bert.tokenizer.pad_token_id
    shown = fill_mask(bert, text, top_k=5, include_special=True)
    default = fill_mask(bert, text, top_k=5)
    assert len(default.masks) == text.count("[MASK]")
    expected = _softmax_at(bert, text, [m.position for m in shown.masks])
    for with_special, without, probabilities in zip(shown.masks, default.masks, expected):
        assert _ids(with_special.top)[:2] == [mask, pad]  # the bias at work
        assert [c.special for c in with_special.top] == [True, True, False, False, False]
        assert not any(c.special for c in without.top)
        order = [i for i in probabilities.argsort(descending=True).tolist() if i not in (0, 100, 101, 102, 103)]
        assert _ids(without.top) == order[:5]  # the next five, in the model's order
        assert _ids(without.top)[:3] == _ids(with_special.top)[2:]
        np.testing.assert_allclose([c.probability for c in without.top], probabilities[order[:5]], rtol=1e-6)
        np.testing.assert_allclose(without.probabilities, probabilities.numpy(), rtol=1e-6)  # the whole distribution
        assert without.rank(mask) == 1 and without.rank(pad) == 2 and without.rank(without.top[0].token_id) == 3


def test_with_special_tokens_fill_mask_is_the_pipelines_list(bert):
    theirs = pipeline("fill-mask", model=bert.model, tokenizer=bert.tokenizer)(ONE_MASK, top_k=5)
    ours = fill_mask(bert, ONE_MASK, top_k=5, include_special=True).masks[0].top
    assert [c.token_id for c in ours] == [t["token"] for t in theirs]
    assert [c.token for c in ours] == [t["token_str"] for t in theirs] and ours[0].token == "[MASK]"
    np.testing.assert_allclose([c.probability for c in ours], [t["score"] for t in theirs], rtol=1e-6)


def test_a_checkpoint_series_leaves_them_out_unless_asked(tmp_path):
    save_tiny_bert_favouring_special(tmp_path / "run" / "checkpoint-10")
    checkpoints = find_checkpoints(tmp_path / "run")
    default = fill_series(checkpoints, TWO_MASKS, top_k=3)[0].result
    shown = fill_series(checkpoints, TWO_MASKS, top_k=3, include_special=True)[0].result
    for without, with_special in zip(default.masks, shown.masks):
        assert [c.token for c in with_special.top[:2]] == ["[MASK]", "[PAD]"]
        assert with_special.top[0].special and not any(c.special for c in without.top)
        assert without.top[0] == with_special.top[2]


def test_the_sparse_pages_predictions_leave_them_out_unless_asked(bert, gpt2):
    for loaded, text, special in ((bert, ONE_MASK, ["[MASK]", "[PAD]"]), (gpt2, NEXT, ["<|endoftext|>"])):
        n = run_attention(loaded, text).n
        window = build_pattern("sliding_window", n, w=1)[None]
        default = enforced_run(loaded, text, None, window, top_k=3).predictions
        shown = enforced_run(loaded, text, None, window, top_k=3, include_special=True).predictions
        assert len(default) == len(shown) == 1  # the mask; the next token after the text
        expected = _softmax_at(loaded, text, [shown[0].position])[0]
        for without, with_special in ((default[0].dense, shown[0].dense), (default[0].sparse, shown[0].sparse)):
            assert [c.token for c in with_special[:len(special)]] == special
            assert all(c.special for c in with_special[:len(special)])
            assert not any(c.special for c in without)
        np.testing.assert_allclose([c.probability for c in default[0].dense], expected[_ids(default[0].dense)],
                                   rtol=1e-5)


def test_next_token_predictions_leave_them_out_unless_asked(gpt2):
    ids = gpt2.tokenizer(NEXT)["input_ids"]
    for position in (None, 2):
        at = len(ids) - 1 if position is None else position
        default = next_token_predictions(gpt2, NEXT, top_k=4, position=position)
        shown = next_token_predictions(gpt2, NEXT, top_k=4, position=position, include_special=True)
        with torch.inference_mode():
            expected = gpt2.model(torch.tensor([ids[:at + 1]])).logits[0, at].softmax(-1)
        assert shown.top[0].token == "<|endoftext|>" and shown.top[0].special
        assert not any(c.special for c in default.top) and 0 not in _ids(default.top)
        assert _ids(default.top) == expected.argsort(descending=True).tolist()[1:5]
        np.testing.assert_allclose([c.probability for c in default.top], expected[_ids(default.top)], rtol=1e-5)
        assert default.probabilities[0] == pytest.approx(expected[0].item(), rel=1e-5)  # still in the distribution
