"""The classic induction-head probe (Olsson et al. 2022, "In-context Learning and Induction Heads"):
a random token sequence repeated twice after BOS. An induction head at a second-copy token attends
to the token that followed its first occurrence, and the model's loss drops on the second copy.

    from models import load_model, run_attention
    from models.analysis.head_stats import head_statistics
    from models.analysis.induction import induction_probe
    from models.interventions.loss import token_losses
    loaded = load_model("smollm2")
    ids = induction_probe(loaded)                     # [1 + 2 * 50]
    run = run_attention(loaded, ids)
    head_statistics(run.attentions, run.tokens, run.special_mask, run.causal).values[HeadMetric.INDUCTION]
    token_losses(loaded, ids).losses                  # [101] nats: high on the first copy, low on the second
"""
import torch

from models.core.loading import LoadedModel
from models.core.run import RunError

LOW, HIGH = 1000, 20000  # the probe's id range in the SmolLM2 facts (issue 18): ordinary tokens of its 49,152


def probe_token_range(loaded: LoadedModel) -> tuple[int, int]:
    """(low, high) for induction_probe: LOW..HIGH - 1, or the upper half of a smaller vocabulary
    (a tiny test model's), which the default range would overrun; ids the tokenizer has a token for."""
    high = min(HIGH, loaded.config.get_text_config().vocab_size, len(loaded.tokenizer))
    return min(LOW, high // 2), high


def induction_probe(loaded: LoadedModel, length: int = 50, seed: int = 0, low: int = LOW,
                    high: int = HIGH) -> list[int]:
    """[BOS] + r + r: token ids, r being `length` ids drawn uniformly from [low, high) by
    torch.randint with a generator seeded `seed`. No BOS if the tokenizer has none."""
    vocab_size = loaded.config.get_text_config().vocab_size
    if not 0 <= low < high <= vocab_size:
        raise RunError(f"The probe's token ids {low}..{high - 1} must lie in the vocabulary 0..{vocab_size - 1}.")
    random = torch.randint(low, high, (1, length), generator=torch.Generator().manual_seed(seed))[0].tolist()
    bos = loaded.tokenizer.bos_token_id
    return ([] if bos is None else [bos]) + random + random
