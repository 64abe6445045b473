"""Next-token predictions and per-token losses of causal LMs against the model's own logits."""
import numpy as np
import pytest
import torch

from models import RunError, load_model, run_attention
from models.core.lm_head import final_logits
from models.core.predictions import Candidate, next_token_predictions, run_next_tokens
from models.core.run import encode, model_inputs
from models.interventions.loss import token_losses

TEXT = "The capital of Italy is Rome. Paris is"


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def causal(request, tiny_models):
    return load_model(str(tiny_models[request.param]))


def _probabilities(loaded, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(torch.tensor([ids])).logits[0].float().softmax(-1)  # [n, vocab]


def test_predictions_after_the_text_are_the_top_of_the_last_logits(causal):
    ids = causal.tokenizer(TEXT)["input_ids"]
    last = _probabilities(causal, ids)[-1]
    values, top = last.topk(5)
    expected = [Candidate(i, causal.tokenizer.decode([i]), pytest.approx(p, rel=1e-5))
                for i, p in zip(top.tolist(), values.tolist())]
    prediction = next_token_predictions(causal, TEXT)
    assert prediction.top == expected
    assert prediction.position == len(ids) - 1
    assert prediction.tokens == causal.tokenizer.convert_ids_to_tokens(ids)


def test_the_prediction_at_a_position_is_that_of_the_token_after_it(causal):
    ids = causal.tokenizer(TEXT)["input_ids"]
    at_two = _probabilities(causal, ids)[2]  # predicts token 3
    prediction = next_token_predictions(causal, TEXT, top_k=3, position=2)
    assert [c.token_id for c in prediction.top] == at_two.topk(3).indices.tolist()
    assert prediction.top == next_token_predictions(causal, causal.tokenizer.decode(ids[:3]), top_k=3).top
    assert prediction.following == ids[3] and next_token_predictions(causal, TEXT).following is None
    assert prediction.rank(ids[3]) == 1 + int((at_two > at_two[ids[3]]).sum())
    for position in (-1, len(ids)):
        with pytest.raises(RunError, match="outside the text's"):
            next_token_predictions(causal, TEXT, position=position)


def test_token_losses_are_the_cross_entropy_of_each_next_token(causal):
    ids = causal.tokenizer(TEXT)["input_ids"]
    probabilities = _probabilities(causal, ids)
    expected = [-np.log(probabilities[i, ids[i + 1]].item()) for i in range(len(ids) - 1)]
    losses = token_losses(causal, ids).losses[1:]  # the first token has no prediction
    assert losses.shape == (len(ids) - 1,) and losses.dtype == np.float32
    np.testing.assert_allclose(losses, expected, rtol=1e-4)
    with torch.no_grad():  # transformers' own mean loss with labels
        mean = causal.model(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert losses.mean() == pytest.approx(mean, rel=1e-5)


@pytest.mark.parametrize("kind", ["bert", "t5"])
def test_models_that_arent_causal_lms_are_refused(tiny_models, kind):
    loaded = load_model(str(tiny_models[kind]))
    with pytest.raises(RunError, match="not a causal language model"):
        next_token_predictions(loaded, TEXT)


def test_the_whole_distribution_comes_with_the_top_k(tiny_models):
    loaded = load_model(str(tiny_models["gpt2"]))
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = loaded.model(input_ids=ids).logits[0, -1].softmax(-1)
    prediction = next_token_predictions(loaded, TEXT, top_k=3)
    np.testing.assert_allclose(prediction.probabilities, expected.numpy(), rtol=1e-6)
    assert [c.token_id for c in prediction.top] == expected.topk(3).indices.tolist()
    assert prediction.top[0].token == loaded.tokenizer.decode([prediction.top[0].token_id])


def test_a_second_text_is_read_after_the_first_as_the_run_reads_it(causal):
    run = run_attention(causal, "The capital of Italy", " is Rome.")
    prediction = next_token_predictions(causal, "The capital of Italy", text_pair=" is Rome.")
    assert prediction.tokens == run.tokens and prediction.position == run.n - 1


def test_a_long_texts_predictions_attend_in_tiles_and_equal_eager(tmp_path, monkeypatch):
    from models.core import attention_fn
    from models.core import run as run_module
    from tests.tiny_models import save_tiny_gpt_oss, save_tiny_llama

    llama = load_model(str(save_tiny_llama(tmp_path / "llama")))
    text = "The capital of Italy is Rome. " * 100  # 701 tokens: past what a run keeps every weight for
    eager = next_token_predictions(llama, text, position=600)
    monkeypatch.setattr(run_module, "FULL_WEIGHTS_BYTES", 0)
    with attention_fn.recording() as calls:
        lean = next_token_predictions(llama, text, position=600)
    assert calls == []  # no call returned weights: every layer attended in row tiles
    np.testing.assert_allclose(lean.probabilities, eager.probabilities, atol=1e-6)
    assert [c.token_id for c in lean.top] == [c.token_id for c in eager.top]
    sinks = load_model(str(save_tiny_gpt_oss(tmp_path / "gpt_oss")))  # not reproducible in tiles: eager, exact
    expected = next_token_predictions(sinks, text, position=600).probabilities
    np.testing.assert_allclose(next_token_predictions(sinks, text, position=600).probabilities, expected)
    monkeypatch.setattr(run_module.long_run, "available_memory", lambda: 0)
    with pytest.raises(RunError, match="needs about .* GB of memory"):  # and too big for eager: said before
        next_token_predictions(sinks, text, position=600)


def _own_logits(loaded, text: str) -> torch.Tensor:
    """[n, vocab] the model's own logits at every position, as run_attention tokenizes `text`."""
    encoding, _ = encode(loaded, text)
    with torch.inference_mode():
        return loaded.model(**model_inputs(loaded, encoding)).logits[0].float()


def _assert_kept_logits(loaded, run, expected: torch.Tensor, positions, atol: float) -> None:
    """The logits from the run's kept hidden states equal `expected` [n, vocab] at `positions`, and so
    do the predictions run_next_tokens gives there."""
    for position in positions:
        kept = final_logits(loaded, torch.tensor(run.final_hidden[position]))  # [vocab]
        torch.testing.assert_close(kept, expected[position], atol=atol, rtol=0)
        prediction = run_next_tokens(loaded, run, position, top_k=3)
        probabilities = expected[position].softmax(-1)
        assert [c.token_id for c in prediction.top] == probabilities.topk(3).indices.tolist()
        np.testing.assert_allclose(prediction.probabilities, probabilities.numpy(), atol=1e-6)
        assert prediction.position == position and prediction.tokens == run.tokens


def test_a_runs_kept_hidden_states_give_the_models_own_logits(causal):
    run = run_attention(causal, TEXT)
    assert run.final_hidden.shape == (run.n, causal.config.hidden_size) and run.final_hidden.dtype == np.float32
    _assert_kept_logits(causal, run, _own_logits(causal, TEXT), (run.n - 1, 2), atol=1e-5)
    at_two = run_next_tokens(causal, run, 2)
    assert at_two.following == next_token_predictions(causal, TEXT, position=2).following
    assert run_next_tokens(causal, run).following is None and run_next_tokens(causal, run).position == run.n - 1
    with pytest.raises(RunError, match="outside the text's"):
        run_next_tokens(causal, run, run.n)


def test_a_long_runs_kept_hidden_states_give_the_models_own_logits(tmp_path, monkeypatch):
    from models.core import run as run_module
    from tests.tiny_models import save_tiny_llama

    llama = load_model(str(save_tiny_llama(tmp_path / "llama")))
    text = "The capital of Italy is Rome. " * 100  # 701 tokens
    expected = _own_logits(llama, text)  # eager, every weight
    monkeypatch.setattr(run_module, "FULL_WEIGHTS_BYTES", 0)
    run = run_attention(llama, text)
    assert run.attentions is None and run.n == expected.shape[0]  # a long run: attention in row tiles
    _assert_kept_logits(llama, run, expected, (run.n - 1, 600), atol=1e-4)


def test_final_logit_soft_capping_is_applied(tmp_path):
    from tests.tiny_models import save_tiny_gemma2

    gemma = load_model(str(save_tiny_gemma2(tmp_path / "gemma2")))
    gemma.model.config.final_logit_softcapping = 0.05  # tiny, so that capping changes every logit
    run = run_attention(gemma, TEXT)
    expected = _own_logits(gemma, TEXT)  # [n, vocab]
    for position in (run.n - 1, 2):
        hidden = torch.tensor(run.final_hidden[position])
        torch.testing.assert_close(final_logits(gemma, hidden), expected[position], atol=1e-6, rtol=0)
        uncapped = gemma.model.get_output_embeddings()(hidden)
        assert float(uncapped.abs().max()) > 0.1 > float(expected[position].abs().max())


def test_a_head_that_does_more_than_the_lm_head_keeps_no_hidden_states(tmp_path):
    from tests.tiny_models import save_tiny_granite

    granite = load_model(str(save_tiny_granite(tmp_path / "granite")))
    run = run_attention(granite, TEXT)
    assert run.final_hidden is None
    with pytest.raises(RunError, match="kept no final hidden states"):
        run_next_tokens(granite, run)
    expected = _own_logits(granite, TEXT)[-1].softmax(-1)  # its predictions run the model, as before
    np.testing.assert_allclose(next_token_predictions(granite, TEXT).probabilities, expected.numpy(), atol=1e-6)


def test_smollm2s_kept_hidden_states_give_its_own_logits(smollm2):
    text = "The capital of France is"
    run = run_attention(smollm2, text)
    _assert_kept_logits(smollm2, run, _own_logits(smollm2, text), (run.n - 1,), atol=1e-4)
    assert run_next_tokens(smollm2, run).top[0].token == " Paris"
