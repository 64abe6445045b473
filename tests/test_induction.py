"""The induction probe: [BOS] + r + r, run as token ids, scored by the head statistics."""
import numpy as np
import pytest
import torch

from models import RunError, load_model, run_attention
from models.analysis.head_stats import head_statistics
from models.analysis.induction import induction_probe, probe_token_range


@pytest.fixture(scope="module")
def llama(tiny_models):
    return load_model(str(tiny_models["llama"]))


def test_the_probe_is_a_seeded_random_sequence_repeated_after_bos(llama):
    ids = induction_probe(llama, length=20, seed=3, low=10, high=300)
    expected = torch.randint(10, 300, (1, 20), generator=torch.Generator().manual_seed(3))[0].tolist()
    assert ids == [llama.tokenizer.bos_token_id] + expected + expected
    assert induction_probe(llama, length=20, seed=3, low=10, high=300) == ids
    assert induction_probe(llama, length=20, seed=4, low=10, high=300) != ids
    with pytest.raises(RunError, match="must lie in the vocabulary 0..399"):
        induction_probe(llama)  # the default 1000..19999 is for SmolLM2's 49,152 tokens
    assert probe_token_range(llama) == (170, 340)  # the upper half of its tokenizer's 340 tokens (400 rows)


def test_the_induction_score_of_the_probe_reads_each_second_copy_token(llama):
    length = 20
    ids = induction_probe(llama, length=length, seed=3, low=10, high=300)
    assert len(set(ids[1:length + 1])) == length  # no repeat inside the first copy: every query is in the second
    run = run_attention(llama, ids)
    stats = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal)
    second = np.arange(1 + length, 1 + 2 * length)  # token i repeats token i - length, followed by i - length + 1
    expected = run.attentions[..., second, second - length + 1].mean(-1)
    np.testing.assert_allclose(stats.values["induction"], expected, rtol=1e-6)
