"""run_attention against references: a plain eager model, the tokenizer, hand-made cases."""
import threading

import numpy as np
import pytest
import torch
import transformers as tf

from models import RunError, attention_stacks, load_model, run_attention
from models.analysis.neuron import neuron_vectors
from models.core.attention_fn import extra_mask, recording
from models.core.predictions import fill_mask
from models.core.scores import ScoresUnavailable
from models.sparse.enforce import enforced_run
from models.sparse.patterns import build_pattern
from tests.tiny_models import LONGFORMER_TEXT, save_tiny_longformer

TEXT, PAIR = "The animal didn't cross the street because it was too tired.", "It was late."


def _eager_reference(loaded, run_inputs):
    """The same weights loaded with transformers' own eager attention, run on the same ids."""
    cls = type(loaded.model)
    reference = cls.from_pretrained(loaded.source, attn_implementation="eager").eval()
    with torch.no_grad():
        return reference(**run_inputs, output_attentions=True)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "gpt2"])
def test_attentions_equal_eager_outputs_exactly(tiny_models, kind):
    loaded = load_model(str(tiny_models[kind]))
    run = run_attention(loaded, TEXT)
    encoded = loaded.tokenizer(TEXT, return_tensors="pt")
    expected = _eager_reference(loaded, {"input_ids": encoded["input_ids"]}).attentions
    np.testing.assert_array_equal(run.attentions, torch.stack(expected)[:, 0].numpy())
    assert run.tokens == loaded.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_encoder_decoder_runs_carry_three_stacks(tiny_models, kind):
    loaded = load_model(str(tiny_models[kind]))
    run = run_attention(loaded, TEXT, PAIR)
    n, m = len(run.tokens), len(run.decoder_tokens)
    assert run.attentions.shape == (2, 4, n, n)
    assert run.decoder_attentions.shape == (2, 4, m, m)
    assert run.cross_attentions.shape == (2, 4, m, n)
    decoder_ids = loaded.tokenizer.convert_tokens_to_ids(run.decoder_tokens)
    expected = _eager_reference(loaded, {
        "input_ids": loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"],
        "decoder_input_ids": torch.tensor([decoder_ids]),
    })
    np.testing.assert_array_equal(run.attentions, torch.stack(expected.encoder_attentions)[:, 0].numpy())
    np.testing.assert_array_equal(run.decoder_attentions, torch.stack(expected.decoder_attentions)[:, 0].numpy())
    np.testing.assert_array_equal(run.cross_attentions, torch.stack(expected.cross_attentions)[:, 0].numpy())
    assert np.allclose(np.triu(run.decoder_attentions, k=1), 0)
    assert list(attention_stacks(run)) == ["encoder", "decoder", "cross"]
    assert attention_stacks(run)["cross"].key_tokens == run.tokens


def test_bundled_model_matches_its_own_eager_outputs(default_model):
    run = run_attention(default_model, TEXT)
    encoded = default_model.tokenizer(TEXT, return_tensors="pt")
    expected = _eager_reference(default_model, dict(encoded)).attentions
    np.testing.assert_array_equal(run.attentions, torch.stack(expected)[:, 0].numpy())
    assert run.attentions.dtype == np.float32
    assert run.attentions.shape == (6, 12, run.n, run.n)
    np.testing.assert_allclose(run.attentions.sum(-1), 1, atol=1e-5)
    assert run.tokens[0] == "[CLS]" and run.tokens[-1] == "[SEP]"
    assert run.special_mask.tolist() == [True] + [False] * (run.n - 2) + [True]


def test_decoder_attention_is_causal(tiny_models):
    run = run_attention(load_model(str(tiny_models["gpt2"])), TEXT)
    assert run.causal
    assert np.all(np.triu(run.attentions, k=1) == 0)
    np.testing.assert_allclose(run.attentions.sum(-1), 1, atol=1e-5)


def test_sentence_pairs_mark_segments(default_model):
    run = run_attention(default_model, "A cat.", "A dog.")
    assert run.tokens == ["[CLS]", "a", "cat", ".", "[SEP]", "a", "dog", ".", "[SEP]"]
    assert run.segment_ids.tolist() == [-1, 0, 0, 0, -1, 1, 1, 1, -1]


def test_long_text_is_truncated_and_says_so(default_model):
    run = run_attention(default_model, "word " * 700)
    assert run.n == default_model.max_tokens == 512
    assert run.n_input_tokens == 702 and run.truncated


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_a_run_error(default_model, text):
    with pytest.raises(RunError, match="empty"):
        run_attention(default_model, text)


def test_recording_sees_every_call_with_the_weights_returned(tiny_models):
    loaded = load_model(str(tiny_models["bart"]))
    with recording() as calls:
        run = run_attention(loaded, TEXT)
    assert len(calls) == 2 + 2 * 2  # encoder self; decoder self and cross per layer
    np.testing.assert_array_equal(calls[0].weights[0].numpy(), run.attentions[0])
    names = {id(module): name for name, module in loaded.model.named_modules()}
    assert [names[id(c.module)].rsplit(".", 1)[-1] for c in calls] == [
        "self_attn", "self_attn", "self_attn", "encoder_attn", "self_attn", "encoder_attn"]
    assert calls[0].query.shape == calls[0].key.shape == (1, 4, run.n, 8)


def test_extra_mask_removes_keys_and_leaves_other_threads_alone(default_model):
    n = run_attention(default_model, TEXT).n
    blocked = torch.zeros(n, n)
    blocked[:, 1] = torch.finfo(torch.float32).min  # nobody may look at token 1

    def masked_run(out):
        with extra_mask(lambda module, q, k: blocked if q == k == n else None):
            out.append(run_attention(default_model, TEXT + " "))  # " " keeps it out of any cache

    masked = []
    worker = threading.Thread(target=masked_run, args=(masked,))
    worker.start()
    plain = run_attention(default_model, TEXT)
    worker.join()
    assert np.all(masked[0].attentions[..., 1] == 0)
    assert np.all(plain.attentions[..., 1] > 0)
    np.testing.assert_allclose(masked[0].attentions.sum(-1), 1, atol=1e-5)


def test_a_model_without_attention_says_so(tmp_path):
    from tests.tiny_models import bert_tokenizer

    config = tf.MambaConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, state_size=4,
                            architectures=["MambaForCausalLM"])
    tf.MambaForCausalLM(config).save_pretrained(tmp_path)
    bert_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(RunError, match="gives no attention weights"):
        run_attention(load_model(str(tmp_path)), TEXT)


INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _fed(loaded, forward) -> dict[str, torch.Tensor]:
    """The inputs `forward()` gives the model: its last call of loaded.model's forward, or of its base
    model's where only that runs (a decoder's run_attention: models.core.run._forward)."""
    calls = {}
    hooks = [module.register_forward_pre_hook(
        lambda module, args, kwargs: calls.__setitem__(module, {k: kwargs[k] for k in INPUT_NAMES
                                                                if kwargs.get(k) is not None}), with_kwargs=True)
        for module in {loaded.model, loaded.model.base_model}]
    try:
        forward()
    finally:
        for hook in hooks:
            hook.remove()
    return calls[loaded.model] if loaded.model in calls else calls[loaded.model.base_model]


@pytest.mark.parametrize("kind, pair, segments", [("bert", None, False), ("bert", PAIR, False), ("roberta", PAIR, False),
                                                  ("gpt2", PAIR, False), ("gpt2", PAIR, True)])
def test_runs_fill_mask_and_enforced_patterns_feed_the_model_the_same_inputs(tiny_models, monkeypatch, kind, pair,
                                                                             segments):
    """One rule (models.core.run.model_inputs): token_type_ids for BERT, as its tokenizer gives them;
    none for RoBERTa (its tokenizer gives none) nor GPT-2, even from a tokenizer that gives them
    (`segments`, as some decoders' do): its forward would add them as token embeddings."""
    loaded = load_model(str(tiny_models[kind]))
    if segments:
        monkeypatch.setattr(loaded.tokenizer, "model_input_names", [*loaded.tokenizer.model_input_names, "token_type_ids"])
        assert "token_type_ids" in loaded.tokenizer(TEXT, pair)
    text = "The capital of [MASK] is Rome." if loaded.has_mlm_head else TEXT
    n = run_attention(loaded, text, pair).n
    feeds = [_fed(loaded, lambda: run_attention(loaded, text, pair)),
             _fed(loaded, lambda: enforced_run(loaded, text, pair, build_pattern("full", n)[None]))]
    if loaded.has_mlm_head and pair is None:
        feeds.append(_fed(loaded, lambda: fill_mask(loaded, text)))
    expected = loaded.tokenizer(text, pair, return_tensors="pt")
    for fed in feeds:
        assert set(fed) == {"input_ids", "attention_mask"} | ({"token_type_ids"} if kind == "bert" else set())
        for name, tensor in fed.items():
            assert torch.equal(tensor, expected[name])
    if kind == "bert" and pair is not None:
        assert feeds[0]["token_type_ids"].max() == 1  # sentence B reaches the model
@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert"])
def test_token_ids_run_as_the_text_that_gives_them(tiny_models, kind):
    loaded = load_model(str(tiny_models[kind]))
    ids = loaded.tokenizer(TEXT)["input_ids"]
    from_text, from_ids = run_attention(loaded, TEXT), run_attention(loaded, ids)
    np.testing.assert_array_equal(from_ids.attentions, from_text.attentions)
    assert from_ids.tokens == from_text.tokens
    assert from_ids.special_mask.tolist() == from_text.special_mask.tolist()


def test_token_ids_outside_the_vocabulary_or_for_an_encoder_decoder_are_refused(tiny_models):
    loaded = load_model(str(tiny_models["gpt2"]))
    with pytest.raises(RunError, match="must lie in 0..399"):
        run_attention(loaded, [5, 400])
    with pytest.raises(RunError, match="No tokens"):
        run_attention(loaded, [])
    assert len(loaded.tokenizer) == 340  # the embedding has 400 rows: ids 340..399 have no token to show
    with pytest.raises(RunError, match=r"Token id 350 has no token in the tokenizer .* \(ids 0..339\)"):
        run_attention(loaded, [5, 350])
    with pytest.raises(RunError, match="encoder-decoder"):
        run_attention(load_model(str(tiny_models["t5"])), [5, 6])


def test_query_heads_sharing_a_key_value_head_see_the_same_keys(tiny_models):
    loaded = load_model(str(tiny_models["llama"]))  # 4 query heads, 2 key/value heads
    assert (loaded.num_heads, loaded.num_key_value_heads) == (4, 2)
    assert [loaded.kv_group(head) for head in range(4)] == [0, 0, 1, 1]
    with recording() as calls:
        run_attention(loaded, TEXT)
    keys = calls[0].key[0]  # [query heads, n, d_head], key/value heads repeated
    for head in range(4):
        for other in range(4):
            assert torch.equal(keys[head], keys[other]) == (loaded.kv_group(head) == loaded.kv_group(other))
    assert [list(loaded.kv_group_heads(group)) for group in range(2)] == [[0, 1], [2, 3]]
    bert = load_model(str(tiny_models["bert"]))  # no grouped-query attention: one key head per query head
    assert bert.num_key_value_heads == 4 and [bert.kv_group(head) for head in range(4)] == [0, 1, 2, 3]
    assert list(bert.kv_group_heads(2)) == [2]


@pytest.mark.parametrize(("kind", "rotary", "lm_head"), [("llama", True, True), ("gpt2", False, True),
                                                          ("bert", False, False), ("t5", False, False)])
def test_rotary_positions_and_a_next_token_head_are_known_from_the_model(tiny_models, kind, rotary, lm_head):
    loaded = load_model(str(tiny_models[kind]))
    assert (loaded.rotary, loaded.has_lm_head) == (rotary, lm_head)
# --- attention that isn't token × token is never drawn under the tokens ---

LOCAL_WINDOW = ("This model family (longformer) returns its attention relative to a local window (self-attention: "
                "12 × 5 for 12 × 12 tokens), not token × token; it isn't supported on this page.")


@pytest.fixture(scope="module")
def longformer(tmp_path_factory):
    return load_model(str(save_tiny_longformer(tmp_path_factory.mktemp("longformer"))))


def test_a_longformer_band_comes_back_token_by_token_and_its_scores_are_refused(longformer):
    encoded = longformer.tokenizer(LONGFORMER_TEXT, return_tensors="pt")
    assert encoded["input_ids"].shape[1] == 12
    with torch.no_grad():  # the reference: what the model returns for 12 tokens
        band = longformer.model(**encoded, output_attentions=True).attentions
    assert tuple(band[0].shape) == (1, 4, 12, 5)
    run = run_attention(longformer, LONGFORMER_TEXT)  # placed as n x n by models.core.native_sparse
    assert run.attentions.shape == (2, 4, 12, 12)
    with pytest.raises(ScoresUnavailable, match="computes its own sparse attention"):
        run_attention(longformer, LONGFORMER_TEXT, with_scores=True)


def test_every_other_reader_of_the_attentions_checks_their_shape(longformer):
    with pytest.raises(RunError) as refused:
        enforced_run(longformer, LONGFORMER_TEXT, None, np.ones((1, 12, 12), bool))
    assert str(refused.value) == LOCAL_WINDOW
    with pytest.raises(ScoresUnavailable, match="computes its own sparse attention"):
        neuron_vectors(longformer, LONGFORMER_TEXT, None)
