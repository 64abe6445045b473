"""Heads switched off through the attention function, against the same change made by hand to the weights."""
import copy
import threading

import numpy as np
import pytest
import torch
import transformers as tf

from models import load_model, run_attention
from models.compare.divergence import run_divergence
from models.core.attention_fn import recording
from models.interventions.ablation import AblationError, ablated, ablation_notice, attention_layers
from tests.tiny_models import bert_tokenizer, save_tiny_gemma2

TEXT = "The animal didn't cross the street because it was too tired."

# where each family's output projection of (stack, layer) sits; {l} is the layer
PROJECTIONS = {
    ("bert", "self-attention"): "bert.encoder.layer.{l}.attention.output.dense",
    ("distilbert", "self-attention"): "transformer.layer.{l}.attention.out_lin",
    ("roberta", "self-attention"): "encoder.layer.{l}.attention.output.dense",
    ("gpt2", "self-attention"): "transformer.h.{l}.attn.c_proj",
    ("t5", "encoder"): "encoder.block.{l}.layer.0.SelfAttention.o",
    ("t5", "decoder"): "decoder.block.{l}.layer.0.SelfAttention.o",
    ("t5", "cross"): "decoder.block.{l}.layer.1.EncDecAttention.o",
    ("bart", "encoder"): "model.encoder.layers.{l}.self_attn.out_proj",
    ("bart", "decoder"): "model.decoder.layers.{l}.self_attn.out_proj",
    ("bart", "cross"): "model.decoder.layers.{l}.encoder_attn.out_proj",
    ("llama", "self-attention"): "model.layers.{l}.self_attn.o_proj",
    ("gemma2", "self-attention"): "model.layers.{l}.self_attn.o_proj",
}
D_HEAD = 8  # every tiny model: hidden 32, 4 heads


@pytest.fixture(scope="module")
def loaded_models(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation-models")
    folders = {**tiny_models, "gemma2": save_tiny_gemma2(root / "gemma2")}
    # float64, so that a change of 1e-6 (tiny random models barely use some heads) stands far above rounding
    return {kind: _in_float64(load_model(str(folder))) for kind, folder in folders.items()}


def _in_float64(loaded):
    loaded.model.double()
    return loaded


def _inputs(loaded) -> dict[str, torch.Tensor]:
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    return {"input_ids": ids, **({"decoder_input_ids": ids[:, :6]} if loaded.kind == "encoder-decoder" else {})}


def _outputs(model, inputs) -> torch.Tensor:
    """The model's final output: logits, or the last hidden state of a model without a head."""
    with torch.inference_mode():
        out = model(**inputs, use_cache=False)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _zeroed_by_hand(loaded, kind: str, stack: str, heads) -> torch.nn.Module:
    """A copy whose output projections ignore the heads: their input columns (Conv1D: rows) set to 0."""
    model = copy.deepcopy(loaded.model)
    for layer, head in heads:
        projection = model.get_submodule(PROJECTIONS[kind, stack].format(l=layer))
        columns = slice(head * D_HEAD, (head + 1) * D_HEAD)
        with torch.no_grad():
            if kind == "gpt2":  # Conv1D weight is [in, out]
                projection.weight[columns, :] = 0
            else:
                projection.weight[:, columns] = 0
    return model


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "gpt2", "t5", "bart", "llama", "gemma2"])
def test_no_head_switched_off_is_bit_identical(loaded_models, kind):
    loaded = loaded_models[kind]
    inputs = _inputs(loaded)
    with torch.inference_mode():
        intact = loaded.model(**inputs, output_attentions=True, use_cache=False)
        with ablated(loaded, []):
            same = loaded.model(**inputs, output_attentions=True, use_cache=False)
    compared = [name for name in ("logits", "last_hidden_state", "attentions", "encoder_attentions",
                                  "decoder_attentions", "cross_attentions") if getattr(intact, name, None) is not None]
    assert {"logits", "last_hidden_state"} & set(compared) and set(compared) & {"attentions", "encoder_attentions"}
    for name in compared:
        a, b = getattr(intact, name), getattr(same, name)
        for x, y in zip(*(([v] if torch.is_tensor(v) else v) for v in (a, b)), strict=True):
            assert torch.equal(x, y), name


@pytest.mark.parametrize(("kind", "stack"), sorted(PROJECTIONS))
def test_zero_ablation_equals_zeroing_the_output_projection(loaded_models, kind, stack):
    loaded = loaded_models[kind]
    heads = [(0, 1), (0, 3), (1, 2)]
    inputs = _inputs(loaded)
    with ablated(loaded, heads, stack=None if stack == "self-attention" else stack):
        switched_off = _outputs(loaded.model, inputs)
    by_hand = _outputs(_zeroed_by_hand(loaded, kind, stack, heads), inputs)
    torch.testing.assert_close(switched_off, by_hand, rtol=0, atol=1e-12)
    assert (switched_off - _outputs(loaded.model, inputs)).abs().max() > 1e-7


def test_nested_blocks_combine_stacks(loaded_models):
    loaded = loaded_models["t5"]
    inputs = _inputs(loaded)
    with ablated(loaded, [(0, 2)], stack="encoder"), ablated(loaded, [(1, 0)], stack="cross"):
        switched_off = _outputs(loaded.model, inputs)
    by_hand = _zeroed_by_hand(loaded, "t5", "encoder", [(0, 2)])
    by_hand.get_submodule(PROJECTIONS["t5", "cross"].format(l=1)).weight.data[:, :D_HEAD] = 0
    torch.testing.assert_close(switched_off, _outputs(by_hand, inputs), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["gpt2", "bart"])
def test_mean_ablation_replaces_the_heads_output_by_its_mean_over_positions(loaded_models, kind):
    loaded, (layer, head) = loaded_models[kind], (0, 2)
    inputs = _inputs(loaded)
    stack = "self-attention" if kind == "gpt2" else "decoder"
    columns = slice(head * D_HEAD, (head + 1) * D_HEAD)

    def to_mean(module, args):  # the projection's input [batch, q, hidden]: the head's slice averaged over q
        x = args[0].clone()
        x[..., columns] = x[..., columns].mean(dim=1, keepdim=True)
        return (x,)

    projection = loaded.model.get_submodule(PROJECTIONS[kind, stack].format(l=layer))
    handle = projection.register_forward_pre_hook(to_mean)
    try:
        by_hand = _outputs(loaded.model, inputs)
    finally:
        handle.remove()
    with ablated(loaded, [(layer, head)], how="mean", stack=None if kind == "gpt2" else "decoder"):
        averaged = _outputs(loaded.model, inputs)
    torch.testing.assert_close(averaged, by_hand, rtol=0, atol=1e-12)
    assert (averaged - _outputs(loaded.model, inputs)).abs().max() > 1e-7


def test_only_later_layers_attend_differently(loaded_models):
    loaded = loaded_models["bert"]
    intact = run_attention(loaded, TEXT)
    with ablated(loaded, [(0, 1)]):
        changed = run_attention(loaded, TEXT)
    np.testing.assert_array_equal(changed.attentions[0], intact.attentions[0])
    divergence = run_divergence(intact, changed)["self-attention"]  # [layers, heads]
    assert (divergence[0] == 0).all() and (divergence[1] > 0).all()


def test_an_ablation_stays_in_its_own_thread(loaded_models):
    loaded = loaded_models["gpt2"]
    inputs = _inputs(loaded)
    intact = _outputs(loaded.model, inputs)
    entered, checked, results = threading.Event(), threading.Event(), {}

    def ablating_session():
        with ablated(loaded, [(0, 0), (1, 1)]):
            entered.set()
            checked.wait(timeout=60)
            results["ablated"] = _outputs(loaded.model, inputs)

    thread = threading.Thread(target=ablating_session)
    thread.start()
    entered.wait(timeout=60)
    results["other"] = _outputs(loaded.model, inputs)  # while the other thread's block is open
    checked.set()
    thread.join()
    assert torch.equal(results["other"], intact)
    assert (results["ablated"] - intact).abs().max() > 1e-7


def test_every_head_off_leaves_each_position_its_own_token(loaded_models):
    loaded = loaded_models["gpt2"]
    every = [(layer, head) for layer in range(2) for head in range(4)]
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    other_start = ids.clone()
    other_start[0, :3] = ids[0, 3:6]
    with ablated(loaded, every):
        logits, other = _outputs(loaded.model, {"input_ids": ids}), _outputs(loaded.model, {"input_ids": other_start})
    torch.testing.assert_close(logits[0, 3:], other[0, 3:], rtol=0, atol=0)  # later tokens never see the change
    assert "Every head is switched off" in ablation_notice(loaded, every)
    assert ablation_notice(loaded, [(1, h) for h in range(4)]).startswith("All heads of layer 1 are off")
    assert ablation_notice(loaded, [(1, 0)]) is None


def test_a_shared_attention_module_is_numbered_per_call(tmp_path):
    """ALBERT calls one attention module in every layer: ablating layer 2 must change layer 3 only."""
    config = tf.AlbertConfig(vocab_size=30522, hidden_size=32, embedding_size=16, num_hidden_layers=4,
                             num_attention_heads=4, intermediate_size=37, architectures=["AlbertForMaskedLM"])
    torch.manual_seed(0)
    tf.AlbertForMaskedLM(config).save_pretrained(tmp_path)
    bert_tokenizer().save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert attention_layers(loaded).heads == {"self-attention": (4, 4, 4, 4)}
    intact = run_attention(loaded, TEXT)
    with ablated(loaded, [(2, 1)]):
        runs = [run_attention(loaded, TEXT) for _ in range(2)]  # the call count stays in step pass after pass
    for changed in runs:
        np.testing.assert_array_equal(changed.attentions[:3], intact.attentions[:3])
        assert not np.allclose(changed.attentions[3], intact.attentions[3])


def test_the_ablated_model_still_goes_through_the_attention_function(loaded_models):
    loaded = loaded_models["llama"]
    with ablated(loaded, [(0, 0)]), recording() as calls:
        _outputs(loaded.model, _inputs(loaded))
    assert len(calls) == 2


@pytest.mark.parametrize(("heads", "stack", "how", "message"), [
    ([(2, 0)], None, "zero", "layer 2 head 0 is out of range: '.*' has 2 layers × 4 heads"),
    ([(0, 4), (-1, 0)], None, "zero", "layer -1 head 0, layer 0 head 4 are out of range"),
    ([(0, 0.5)], None, "zero", r"\(layer, head\) pairs of whole numbers"),
    ([3], None, "zero", r"\(layer, head\) pairs"),
    ([(0, 0)], "decoder", "zero", "has no attention stack 'decoder': it has self-attention"),
    ([(0, 0)], None, "random", "by 'zero' or 'mean', not 'random'"),
])
def test_bad_heads_get_a_clear_message(loaded_models, heads, stack, how, message):
    with pytest.raises(AblationError, match=message):
        with ablated(loaded_models["gpt2"], heads, how=how, stack=stack):
            pass


def test_a_model_whose_attention_bypasses_the_function_cannot_be_gated(tmp_path):
    config = tf.LongformerConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=37, attention_window=4, architectures=["LongformerForMaskedLM"])
    tf.LongformerForMaskedLM(config).save_pretrained(tmp_path)
    bert_tokenizer().save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    with pytest.raises(AblationError, match=r"\(longformer\) computes its attention .* outside"):
        with ablated(loaded, [(0, 0)]):
            pass
