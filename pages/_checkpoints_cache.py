"""The Checkpoints page's cached computations: one model in memory at a time, results kept.

They live here, in a module imported once per process, and not in pages/checkpoints.py, so that
Streamlit doesn't re-read their source on every click (see pages/_heads_cache.py).
"""
import streamlit as st

from models import AttentionRun, load_model, run_attention
from models.checkpoints.discovery import Checkpoint, hub_checkpoints
from models.checkpoints.series import CheckpointFill, fill_checkpoint
from models.core.settings import settings_from_env
from pages._shared import overview_grid
from viz.overview import ThumbnailGrid


@st.cache_data(max_entries=96, show_spinner=False)  # each holds [masks, vocab] probabilities
def cached_fill(spec: str, step: int | None, problem: str | None, signature: str, text: str,
                top_k: int) -> CheckpointFill:
    """`signature` changes when the checkpoint folder is rewritten."""
    return fill_checkpoint(Checkpoint(spec, step, problem), text, top_k, settings_from_env())


@st.cache_data(max_entries=4, show_spinner=False)
def cached_attention(spec: str, signature: str, text: str) -> tuple[AttentionRun, ThumbnailGrid]:
    settings = settings_from_env()
    run = run_attention(load_model(spec, settings), text, max_chars=settings.max_text_chars)
    return run, overview_grid(run.attentions)


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def cached_hub_checkpoints(specs: tuple[str, ...]) -> list[Checkpoint]:
    return hub_checkpoints(list(specs))  # checks the network once a minute at most
