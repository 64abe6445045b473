"""The Adaptive attention span page's cached computation: a saved run, loaded once per process.

It lives here, in a module imported once per process, and not in pages/adaptive_span.py, so that
Streamlit doesn't re-read its source on every click (see pages/_heads_cache.py).
"""
import streamlit as st

from models.span.lm import TrainedRun
from models.span.runs import load_run


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_span_run(name: str, saved_at: float) -> TrainedRun:
    """A saved run, loaded once per process (saved_at: run.json's mtime, so a re-save reloads)."""
    return load_run(name)
