"""A causal LM's next-token logits from its final hidden states: its LM head (and any final logit
soft-capping) applied to the positions asked for. A run keeps the hidden states
(AttentionRun.final_hidden), so predictions at any position need no second forward pass."""
import weakref

import torch

from models.core.loading import LoadedModel

PROBE_TOKENS = 4
TOLERANCE = 1e-4  # float32 logits of one row vs the model's batched matmul: ~1e-6 apart


def final_logits(loaded: LoadedModel, hidden: torch.Tensor) -> torch.Tensor:
    """[..., vocab] float32 logits on the CPU from final hidden states [..., hidden] (the base
    model's last_hidden_state): the output embeddings (lm_head), then, where the config sets
    final_logit_softcapping, cap * tanh(logits / cap) as Gemma 2's forward does."""
    with torch.inference_mode():
        logits = loaded.model.get_output_embeddings()(hidden.to(loaded.device)).float()
    cap = getattr(loaded.config.get_text_config(), "final_logit_softcapping", None)
    return (cap * torch.tanh(logits / cap) if cap else logits).cpu()


_verdicts: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


def reproduces_logits(loaded: LoadedModel, input_ids: torch.Tensor) -> bool:
    """Do final_logits of the base model's last hidden states equal the model's own logits? Probed
    once per model on the first PROBE_TOKENS of input_ids [1, n]. False for a model without an LM
    head, or whose head does more (Cohere's logit_scale, Granite's logits_scaling)."""
    if not loaded.has_lm_head or loaded.model.get_output_embeddings() is None:
        return False
    if loaded.model not in _verdicts:
        ids = input_ids[:, :PROBE_TOKENS].to(loaded.device)
        with torch.inference_mode():
            expected = loaded.model(input_ids=ids, use_cache=False).logits[0].float().cpu()  # [t, vocab]
            hidden = loaded.model.base_model(input_ids=ids, use_cache=False).last_hidden_state[0]  # [t, hidden]
        _verdicts[loaded.model] = torch.allclose(final_logits(loaded, hidden), expected, rtol=TOLERANCE,
                                                 atol=TOLERANCE)
    return _verdicts[loaded.model]
