"""The Compare page's cached computations, keyed by (model A, model B, text, sentence B).

They live here, in a module imported once per process, and not in pages/compare.py, so that
Streamlit doesn't re-read their source on every click (see pages/_heads_cache.py).
"""
import streamlit as st

from models.compare.alignment import AlignedRuns, align_runs
from models.compare.divergence import HeadMatching, match_heads
from models.compare.series import SeriesStatistics, run_series, series_checkpoints, series_statistics
from models.core.settings import settings_from_env
from pages._shared import cached_model, cached_run


def _loaded_run(spec: str, text: str, text_b: str):
    return cached_model(spec), cached_run(spec, text, text_b)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_alignment(spec_a: str, spec_b: str, text: str, text_b: str) -> AlignedRuns:
    return align_runs(*_loaded_run(spec_a, text, text_b), *_loaded_run(spec_b, text, text_b), text, text_b or None)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_matching(spec_a: str, spec_b: str, text: str, text_b: str) -> HeadMatching:
    aligned = cached_alignment(spec_a, spec_b, text, text_b)
    return match_heads(aligned.a, aligned.b)


@st.cache_data(max_entries=4, show_spinner=False)
def cached_series(folder: str, signature: tuple, text: str, text_b: str) -> tuple[SeriesStatistics, list[str]]:
    """(the statistics, why checkpoints were left out). `signature` (the checkpoints' steps and
    times) makes a retrained series recompute."""
    settings = settings_from_env()
    checkpoints, _ = series_checkpoints(folder, settings)
    ran = run_series(checkpoints, text, text_b or None, settings)
    return series_statistics(ran.runs, ran.steps), ran.left_out
