"""A sentence embedding: what a model without a prediction head (minilm) gives to compare.

The mean of the last hidden states over the text's tokens, as sentence-transformers pools
all-MiniLM-L6-v2 (its normalisation afterwards leaves the cosine unchanged). For an
encoder-decoder, the encoder's last hidden states.
"""
import numpy as np
import torch

from models.core.loading import LoadedModel
from models.core.run import encode, model_inputs


def sentence_embedding(loaded: LoadedModel, text: str, max_chars: int | None = None) -> np.ndarray:
    """[hidden] float32: mean-pooled last hidden state of `text`'s tokens (special tokens included)."""
    encoding, _ = encode(loaded, text, max_chars=max_chars)
    with torch.inference_mode():
        outputs = loaded.model(**model_inputs(loaded, encoding, text), output_hidden_states=True, use_cache=False)
    hidden = outputs.encoder_last_hidden_state if loaded.kind == "encoder-decoder" else outputs.hidden_states[-1]
    mask = encoding["attention_mask"][0, :, None].to(hidden.dtype)  # [n, 1]
    return ((hidden[0] * mask).sum(dim=0) / mask.sum()).float().numpy()


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b) of two vectors; 1 for the same direction."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
