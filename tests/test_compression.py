"""L1 pruning and int8 quantization of a whole model: new models, the original untouched; what they cost."""
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass
from transformers.pytorch_utils import Conv1D

from models import load_model, run_attention
from models.core.attention_fn import recording
from models.interventions import compression
from models.interventions.ablation import ablated
from models.interventions.compression import CompressionError, pruned_l1, quantized_int8
from models.interventions.embedding import cosine_similarity, sentence_embedding
from models.interventions.footprint import forward_seconds, memory_bytes, zero_share

TEXT = "The animal didn't cross the street because it was too tired."


@pytest.fixture(scope="module")
def loaded_models(tiny_models):
    return {kind: load_model(str(tiny_models[kind])) for kind in ("bert", "gpt2", "t5")}


def _state(loaded) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in loaded.model.state_dict().items()}


def _linear_weights(model) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, Conv1D))]


@pytest.mark.parametrize("kind", ["bert", "gpt2", "t5"])
def test_pruning_zeroes_the_smallest_share_of_every_linear_weight(loaded_models, kind):
    loaded = loaded_models[kind]
    before = _state(loaded)
    pruned = pruned_l1(loaded, 0.3)
    for original, weight in zip(_linear_weights(loaded.model), _linear_weights(pruned.model), strict=True):
        kept = weight != 0
        assert (~kept).sum() == round(0.3 * weight.numel())
        torch.testing.assert_close(weight[kept], original[kept], rtol=0, atol=0)
        assert original.abs()[~kept].max() <= original.abs()[kept].min()
    assert all(torch.equal(value, before[name]) for name, value in loaded.model.state_dict().items())
    assert pruned.spec == f"{loaded.spec} · L1-pruned 30%" and pruned.model is not loaded.model


def test_pruning_a_tied_head_prunes_the_embedding_once(loaded_models):
    pruned = pruned_l1(loaded_models["gpt2"], 0.5)
    embedding = pruned.model.transformer.wte.weight
    assert embedding is pruned.model.lm_head.weight
    assert (embedding == 0).float().mean().item() == pytest.approx(0.5, abs=1e-3)  # not 75%: pruned once


def test_zero_share_counts_the_pruned_weights(loaded_models):
    loaded = loaded_models["bert"]
    pruned = pruned_l1(loaded, 0.4)
    zeros = sum(int((p == 0).sum()) for p in pruned.model.parameters())
    assert zero_share(pruned) == zeros / loaded.num_parameters
    assert zero_share(pruned) > zero_share(loaded) + 0.1


@pytest.mark.parametrize("amount", [-0.1, 1, 1.5, float("nan"), "0.2", None])
def test_an_amount_outside_zero_to_one_is_refused(loaded_models, amount):
    with pytest.raises(CompressionError, match="share of each weight from 0 to just under 1"):
        pruned_l1(loaded_models["bert"], amount)


@pytest.mark.parametrize("kind", ["bert", "gpt2", "t5"])
def test_int8_model_is_new_and_still_runs_through_the_attention_function(loaded_models, kind):
    loaded = loaded_models[kind]
    before = _state(loaded)
    quantized = quantized_int8(loaded)
    assert all(torch.equal(value, before[name]) for name, value in loaded.model.state_dict().items())
    assert quantized.spec == f"{loaded.spec} · int8 (torchao)"
    weights = _linear_weights(quantized.model)
    assert weights and all(is_traceable_wrapper_subclass(w) and w.qdata.dtype == torch.int8 for w in weights)
    pair = "It was late." if kind == "t5" else None
    run_attention(quantized, TEXT, pair)  # a causal LM's first run also checks its LM head once (models.core.lm_head)
    with recording() as calls:
        run = run_attention(quantized, TEXT, pair)
    intact = run_attention(loaded, TEXT, pair)
    assert len(calls) == len(intact.attentions) * (3 if kind == "t5" else 1)
    assert run.attentions.shape == intact.attentions.shape
    np.testing.assert_allclose(run.attentions.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(run.attentions, intact.attentions, atol=0.05)  # int8: close, not equal
    with ablated(quantized, [(0, 1)]):
        run_attention(quantized, TEXT, pair)


def test_gpt2_conv1d_becomes_an_equal_linear_before_quantizing(loaded_models):
    loaded = loaded_models["gpt2"]
    model = compression.copy.deepcopy(loaded.model)
    compression._conv1d_as_linear(model)
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        torch.testing.assert_close(model(ids).logits, loaded.model(ids).logits, rtol=1e-5, atol=1e-5)


def test_memory_counts_int8_values_and_their_scales(loaded_models):
    layer = replace(loaded_models["bert"], model=torch.nn.Sequential(torch.nn.Linear(64, 32)))
    assert memory_bytes(layer) == (32 * 64 + 32) * 4
    # int8 weights, a float32 scale and an int8 zero point per output row, the float32 bias
    assert memory_bytes(quantized_int8(layer)) == 32 * 64 + 32 * 4 + 32 + 32 * 4


def test_int8_without_an_engine_is_a_clear_error(loaded_models, monkeypatch):
    import torchao.quantization

    def no_kernel(*args, **kwargs):
        raise NotImplementedError("Could not run 'aten::_int_mm' with arguments from the 'CPU' backend")

    compression._int8_quantizer.cache_clear()
    monkeypatch.setattr(torchao.quantization, "quantize_", no_kernel)
    try:
        with pytest.raises(CompressionError, match="int8 quantization has no engine on this machine .*_int_mm"):
            quantized_int8(loaded_models["bert"])
        monkeypatch.setitem(sys.modules, "torchao.quantization", None)
        with pytest.raises(CompressionError, match="needs torchao, which is not installed"):
            quantized_int8(loaded_models["bert"])
    finally:
        compression._int8_quantizer.cache_clear()


def test_forward_seconds_is_a_positive_time(loaded_models):
    assert 0 < forward_seconds(loaded_models["t5"], TEXT, repeats=2) < 60


def test_sentence_embedding_matches_sentence_transformers(default_model):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(default_model.source, device="cpu").encode([TEXT, "A cat."])
    ours = [sentence_embedding(default_model, text) for text in (TEXT, "A cat.")]
    for mine, theirs in zip(ours, reference):
        assert cosine_similarity(mine, theirs) == pytest.approx(1.0, abs=1e-6)
    assert cosine_similarity(ours[0], ours[1]) == pytest.approx(float(reference[0] @ reference[1]), abs=1e-5)
    with ablated(default_model, [(layer, head) for layer in range(6) for head in range(12)]):
        assert cosine_similarity(sentence_embedding(default_model, TEXT), ours[0]) < 0.99
