"""The Heads page's cached computations, keyed by (model, text, sentence B, ...) so that
widgets never re-run the model.

They live here, in a module imported once per process, and not in pages/heads.py: a page file
runs again on every click, and each time Streamlit re-read the source of every cached function
defined in it to key its cache (~1 ms each).
"""
import numpy as np
import streamlit as st

from models import attention_stacks
from models.analysis.aggregation import rollout_layers
from models.analysis.head_stats import HeadStatistics, head_statistics
from models.analysis.matrix_view import MatrixView, matrix_view
from models.analysis.neuron import neuron_vectors
from models.analysis.words import special_token_mask, stack_word_spans
from pages._shared import cached_model, cached_run, overview_grid
from viz.bertviz_offline import (
    BertvizLimits,
    encoder_decoder_entries,
    head_view_html,
    model_view_html,
    neuron_view_html,
    self_attention_entries,
)
from viz.overview import ThumbnailGrid

BERTVIZ_OFF, HEAD_VIEW, MODEL_VIEW, NEURON_VIEW = "off", "head view", "model view", "neuron view"


def _stack(spec: str, text: str, text_b: str, stack_name: str):
    return attention_stacks(cached_run(spec, text, text_b))[stack_name]


@st.cache_data(max_entries=16, show_spinner=False)
def cached_lens(spec: str, text: str, text_b: str, stack_name: str, words: bool, block: str) -> MatrixView:
    run, stack = cached_run(spec, text, text_b), _stack(spec, text, text_b, stack_name)
    spans = stack_word_spans(cached_model(spec), run, stack_name, text, text_b or None) if words else (None, None)
    segments = run.segment_ids if stack_name == "self-attention" else None
    return matrix_view(stack.query_labels, stack.key_labels, *spans, segments, block)


# resource caches for what is shared read-only (bytes, read-only arrays): cache_data would
# pickle a copy on every rerun

@st.cache_resource(max_entries=16, show_spinner=False)
def cached_grid(spec: str, text: str, text_b: str, stack_name: str, words: bool, block: str) -> ThumbnailGrid:
    lens = cached_lens(spec, text, text_b, stack_name, words, block)
    return overview_grid(lens.apply(_stack(spec, text, text_b, stack_name).attentions))


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_rollout(spec: str, text: str, text_b: str, stack_name: str) -> np.ndarray:
    rollouts = rollout_layers(_stack(spec, text, text_b, stack_name).attentions)  # [layers, n, n]
    rollouts.setflags(write=False)
    return rollouts


@st.cache_data(max_entries=16, show_spinner=False)
def cached_statistics(spec: str, text: str, text_b: str, stack_name: str) -> HeadStatistics:
    run, stack = cached_run(spec, text, text_b), _stack(spec, text, text_b, stack_name)
    special = special_token_mask(cached_model(spec), stack.key_tokens) if stack_name == "decoder" else run.special_mask
    return head_statistics(stack.attentions, stack.key_tokens, special, stack.causal)


@st.cache_data(max_entries=2, show_spinner=False)
def cached_neuron_vectors(spec: str, text: str, text_b: str) -> tuple[np.ndarray, np.ndarray]:
    return neuron_vectors(cached_model(spec), text, text_b or None)


@st.cache_data(max_entries=6, show_spinner=False)
def cached_bertviz(spec: str, text: str, text_b: str, view: str, words: bool, max_tokens: int,
                   layers: tuple[int, ...], layer: int, head: int, zoom: float) -> str:
    run, limits = cached_run(spec, text, text_b), BertvizLimits(max_tokens=max_tokens)
    if view == NEURON_VIEW:
        queries, keys = cached_neuron_vectors(spec, text, text_b)
        lens = cached_lens(spec, text, text_b, "self-attention", False, "all")
        entries = self_attention_entries(run.attentions, run.labels, lens.sentence_b_start, limits, queries, keys)
        return neuron_view_html(entries, run.causal, layer, head, limits, zoom)
    if run.decoder_tokens is not None:
        lenses = {name: cached_lens(spec, text, text_b, name, words, "all") for name in ("encoder", "decoder", "cross")}
        entries = encoder_decoder_entries(lenses["encoder"].apply(run.attentions),
                                          lenses["decoder"].apply(run.decoder_attentions),
                                          lenses["cross"].apply(run.cross_attentions),
                                          lenses["encoder"].query_tokens, lenses["decoder"].query_tokens, limits)
    else:
        lens = cached_lens(spec, text, text_b, "self-attention", words, "all")
        entries = self_attention_entries(lens.apply(run.attentions), lens.query_tokens, lens.sentence_b_start, limits)
    if view == HEAD_VIEW:
        return head_view_html(entries, list(layers), layer, limits, zoom)
    return model_view_html(entries, list(layers), limits, zoom)
