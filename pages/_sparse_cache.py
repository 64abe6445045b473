"""The Sparse attention page's cached computations, keyed by the patterns' values, so that
moving a slider elsewhere recomputes nothing.

They live here, in a module imported once per process, and not in pages/sparse.py, so that
Streamlit doesn't re-read their source on every click (see pages/_heads_cache.py).
"""
import numpy as np
import streamlit as st

from models.analysis.numerics import pooled
from models.sparse.cost import CostPoint, Growth, active_cells, growth, measure_cost
from models.sparse.enforce import EnforcedRun, coverage, enforced_run
from models.sparse.patterns import AnyPattern, HeadPatterns
from models.sparse.reachability import Reachability, reachability
from pages._shared import cached_model, cached_run
from viz.sparse import mask_figure, mask_side


@st.cache_data(max_entries=24, show_spinner=False)
def cached_mask_figure(pattern: AnyPattern, n: int, title: str, height: int):
    return mask_figure(pooled(pattern.build(n), mask_side(n)), n, title, height)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_cells(pattern: AnyPattern, n: int) -> int:
    return active_cells(pattern, n)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_growth(pattern: AnyPattern, scale_stride: bool) -> Growth:
    return growth(pattern, scale_stride=scale_stride)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_reachability(pattern: AnyPattern, n: int) -> Reachability:
    return reachability(pattern.build(n))


@st.cache_data(max_entries=4, show_spinner=False)
def cached_cost(pattern: AnyPattern) -> list[CostPoint]:
    return measure_cost(pattern)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_coverage(spec: str, text: str, text_b: str, patterns: HeadPatterns) -> np.ndarray:
    run = cached_run(spec, text, text_b)
    return coverage(run.attentions, patterns.masks(run.n, run.num_heads))


@st.cache_data(max_entries=8, show_spinner=False)
def cached_enforced(spec: str, text: str, text_b: str, patterns: HeadPatterns, n: int, heads: int) -> EnforcedRun:
    return enforced_run(cached_model(spec), text, text_b or None, patterns.masks(n, heads))
