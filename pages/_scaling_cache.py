"""The Scaling page's cached computations: random-vector samples and sweeps keyed by their
settings, and the live model's run with queries, keys and scores.

They live here, in a module imported once per process, and not in pages/scaling.py, so that
Streamlit doesn't re-read their source on every click (see pages/_heads_cache.py).
"""
import streamlit as st

from models import AttentionRun, run_attention
from models.scaling.random_vectors import (
    DotProductSample,
    MeanAbsCurve,
    SoftmaxSweep,
    classic_demonstration,
    dot_product_sample,
    log_grid,
    mean_abs_curve,
    softmax_sweep,
)
from pages._shared import cached_model

CURVE_DIMS = log_grid(1, 16384)  # the x values of the curves against d
TRIALS = 500  # softmax trials per d


@st.cache_data(max_entries=16, show_spinner=False)
def cached_sample(d: int, n_samples: int, seed: int) -> DotProductSample:
    return dot_product_sample(d, n_samples, seed)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_curve(n_samples: int, seed: int) -> MeanAbsCurve:
    return mean_abs_curve(CURVE_DIMS, n_samples, seed)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_classic(seed: int) -> MeanAbsCurve:
    return classic_demonstration(seed)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_sweep(n_keys: int, seed: int) -> SoftmaxSweep:
    return softmax_sweep(CURVE_DIMS, n_keys, TRIALS, seed)


@st.cache_resource(max_entries=2, show_spinner=False)
def cached_scored_run(spec: str, text: str, text_pair: str) -> AttentionRun:
    """The run with q, k and pre-softmax scores: twice a plain run's arrays (150 MB for MiniLM at
    512 tokens), so kept as one read-only copy rather than unpickled on every rerun."""
    return run_attention(cached_model(spec), text, text_pair or None, with_scores=True)
