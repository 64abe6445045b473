"""What a model predicts on a text, in one form for every kind of model, to set a changed model
(heads switched off, pruned, quantized) beside the intact one:

- causal LM: the next token after the text (models.core.predictions.next_token_predictions);
- masked LM: each mask token of the text (fill_mask; NoMaskError for a text without one);
- a model without a prediction head (minilm) or an encoder-decoder: NoPredictions, whose message
  says what shows the change instead (the sentence embedding's cosine similarity, models.interventions.embedding;
  the loss per token, models.interventions.loss).

    intact = predictions(loaded, "The capital of France is")[0]
    with ablated(loaded, [(3, 1)]):
        changed = predictions(loaded, "The capital of France is")[0]
    changed.probability(intact.top[0].token_id)      # " Paris": 0.77 intact, and now?
"""
from dataclasses import dataclass

import numpy as np

from models.core.loading import LoadedModel
from models.core.predictions import Candidate, fill_mask, next_token_predictions
from models.core.run import RunError
from models.core.token_text import token_labels


class NoPredictions(RunError):
    """The model predicts no tokens here; str(error) says what to compare instead."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """One predicted position: the next token, or one mask."""

    where: str  # "next token" or "mask 1", "mask 2", ...
    top: list[Candidate]  # the top_k, most probable first
    probabilities: np.ndarray  # [vocab] float32: the whole distribution

    def probability(self, token_id: int) -> float:
        return float(self.probabilities[token_id])

    def rank(self, token_id: int) -> int:
        """1 for the most probable token; ties share the better rank."""
        return 1 + int((self.probabilities > self.probabilities[token_id]).sum())


def predictions(loaded: LoadedModel, text: str, top_k: int = 5, max_chars: int | None = None) -> list[Prediction]:
    """The model's predictions on `text`: [next token] for a causal LM, one per mask for a masked LM.

    Raises NoMaskError (a masked LM, a text without its mask token), NoPredictions (no prediction
    head, or an encoder-decoder), RunError (a text the model can't read).
    """
    if loaded.kind == "decoder":
        nxt = next_token_predictions(loaded, text, top_k, max_chars=max_chars)
        return [Prediction("next token", nxt.top, nxt.probabilities)]
    if loaded.kind == "encoder-decoder":
        raise NoPredictions(f"'{loaded.spec}' is an encoder-decoder: its decoder predicts the text token by token, "
                            "so the loss per token shows what changed.")
    if not loaded.has_mlm_head:
        raise NoPredictions(f"'{loaded.spec}' has no prediction head ({type(loaded.model).__name__}): the cosine "
                            "similarity of its sentence embeddings shows what changed instead.")
    masks = fill_mask(loaded, text, top_k, max_chars).masks
    return [Prediction(f"mask {i + 1}" if len(masks) > 1 else "mask", mask.top, mask.probabilities)
            for i, mask in enumerate(masks)]


def readable_tokens(loaded: LoadedModel, tokens: list[str]) -> list[str]:
    """Tokens as the tokenizer writes them (TokenLosses.tokens) as a reader sees them (AttentionRun.labels)."""
    return token_labels(loaded.tokenizer, loaded.tokenizer.convert_tokens_to_ids(tokens), tokens)
