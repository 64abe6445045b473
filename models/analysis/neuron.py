"""Queries and keys for bertviz's neuron view, recorded from the loaded model.

bertviz's own neuron view runs its vendored copies of a few model classes. Here it is fed
the q and k vectors recorded from the loaded model instead (models.core.scores). The view
recomputes softmax(q·k / √d) in the browser, so it is exact only for plain scaled
dot-product self-attention (BERT, RoBERTa, DistilBERT, GPT-2, ...): models that scale
differently or add a position bias, and encoder-decoders, get a reason instead.
"""
from typing import Sequence

import numpy as np

from models.core.loading import LoadedModel
from models.core.run import run_attention


class NeuronViewUnsupported(ValueError):
    """str(error) says for the page why this model has no neuron view."""


def neuron_vectors(loaded: LoadedModel, text: str | Sequence[int],
                   text_pair: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys), each [layers, heads, n, d_head], of the run of `text` or token ids (same
    tokens as run_attention)."""
    if loaded.kind == "encoder-decoder":
        raise NeuronViewUnsupported("bertviz's neuron view shows one self-attention stack; "
                                    "it has no form for encoder-decoder models.")
    stack = next(iter(run_attention(loaded, text, text_pair, with_scores=True).score_stacks.values()))
    layers = stack.query.shape[0]
    if stack.bias is not None or not all(stack.scales_by_sqrt_d(layer) for layer in range(layers)):
        raise NeuronViewUnsupported(
            "this model does not compute plain softmax(q·k/√d) (it scales differently or adds a position "
            "bias), so bertviz's neuron view, which recomputes that in the browser, would show wrong numbers."
        )
    return stack.query, stack.key
