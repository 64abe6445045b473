"""A changed model beside the intact one: heads switched off (the Heads at work page) or the whole model
compressed (model B on the Compare page). Its outputs are cached by (model, change, text), and what it
does differently is shown the same way on both pages: predictions side by side, the loss per token, or
the sentence embedding's similarity.

A change is a hashable tuple (cache keys): None for the intact model, heads_off(...) or compressed(...).
"""
import contextlib
from typing import Iterator

import numpy as np
import streamlit as st

from models import AttentionRun, LoadedModel, run_attention
from models.core.predictions import NoMaskError
from models.core.settings import settings_from_env
from models.core.tiles import Progress
from models.interventions.ablation import Head, ablated_stacks
from models.interventions.compression import pruned_l1, quantized_int8
from models.interventions.embedding import cosine_similarity, sentence_embedding
from models.interventions.loss import LossError, TokenLosses, token_losses
from models.interventions.outcome import NoPredictions, Prediction, predictions, readable_tokens
from models.interventions.progress import attention_progress
from pages._shared import Slot, cached_model, cached_run, lecture_mode, progress_bar, show_figure
from viz.heads_at_work import token_loss_figure
from viz.labels import display_token, markdown_literal
from viz.predictions import topk_table
from viz.theme import LECTURE_SCALE, file_stem

HEADS_OFF, COMPRESSED = "heads off", "compressed"
L1, INT8 = "L1", "int8"  # compression methods
TOP_K = 5
COMPRESSED_KEPT = 2  # compressed models kept in memory, each a whole copy of its model

Change = tuple | None
Ablation = tuple[tuple[str, tuple[Head, ...]], ...]  # (stack, heads switched off) of each stack with some off


def heads_off(ablation: Ablation, how: str) -> Change:
    return (HEADS_OFF, ablation, how)


def compressed(method: str, amount: float = 0.0) -> Change:
    """L1 pruning of `amount` (0 to 1) of every linear weight, or int8 quantization (amount unused: 0)."""
    return (COMPRESSED, method, float(amount) if method == L1 else 0.0)


@st.cache_resource(max_entries=COMPRESSED_KEPT, show_spinner=False)
def cached_compressed(spec: str, method: str, amount: float) -> LoadedModel:
    """A compressed copy of the model, kept apart from the models as loaded. Raises CompressionError."""
    loaded = cached_model(spec)
    return pruned_l1(loaded, amount) if method == L1 else quantized_int8(loaded)


@contextlib.contextmanager
def changed_model(spec: str, change: Change) -> Iterator[LoadedModel]:
    """The model with the change, for the forward passes inside the block."""
    if change is None:
        yield cached_model(spec)
    elif change[0] == HEADS_OFF:
        _, ablation, how = change
        with ablated_stacks(cached_model(spec), dict(ablation), how):
            yield cached_model(spec)
    else:
        yield cached_compressed(spec, *change[1:])


@st.cache_resource(max_entries=2, show_spinner=False)  # shared read-only, as cached_run's; [layers, heads, n, n] each
def _changed_run_slot(spec: str, change: Change, text: str, text_b: str) -> Slot:
    return Slot()


def _changed_run(spec: str, change: Change, text: str, text_b: str, progress) -> AttentionRun:
    with changed_model(spec, change) as loaded:
        return run_attention(loaded, text, text_b or None, max_chars=settings_from_env().max_text_chars,
                             progress=progress)


def cached_changed_run(spec: str, change: Change, text: str, text_b: str) -> AttentionRun:
    """The run with the change, a long one in row tiles with a progress bar a rerun stops (nothing kept)."""
    if change is None:
        return cached_run(spec, text, text_b)  # the intact model's: the sidebar's run
    with progress_bar("Running the model with the change: layer") as progress:
        return _changed_run_slot(spec, change, text, text_b).get(
            lambda: _changed_run(spec, change, text, text_b, progress))


@st.cache_resource(max_entries=64, show_spinner=False)  # shared read-only
def _outcome_slot(what: str, spec: str, change: Change, text: str) -> Slot:
    return Slot()


def cached_predictions(spec: str, change: Change, text: str, progress: Progress | None = None) -> list[Prediction]:
    """The predictions with the change; `progress(done, total)` after each attention layer (progress_bar:
    a rerun stops the pass, nothing kept)."""
    def compute() -> list[Prediction]:
        with changed_model(spec, change) as loaded, attention_progress(loaded, progress):
            return predictions(loaded, text, TOP_K, settings_from_env().max_text_chars)
    return _outcome_slot("predictions", spec, change, text).get(compute)


def cached_losses(spec: str, change: Change, text: str, progress: Progress | None = None) -> TokenLosses:
    """The loss per token with the change; `progress` after each attention layer of each pass."""
    def compute() -> TokenLosses:
        with changed_model(spec, change) as loaded, attention_progress(loaded, progress):
            return token_losses(loaded, text, settings_from_env().max_text_chars)
    return _outcome_slot("losses", spec, change, text).get(compute)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_embedding(spec: str, change: Change, text: str) -> np.ndarray:
    with changed_model(spec, change) as loaded:
        return sentence_embedding(loaded, text, settings_from_env().max_text_chars)


# --- what changed, shown ---

def _quoted(token: str) -> str:
    return f"“{markdown_literal(display_token(token))}”"


def delta(text: str, color: str = "normal") -> dict:
    """st.metric's delta arguments for a change written as `text` ("+0.0 points"): one that shows as
    zero gets no arrow and no colour, rather than an arrow up."""
    if float(text.split()[0]) == 0:
        return dict(delta="no change", delta_color="off", delta_arrow="off")
    return dict(delta=text, delta_color=color)


def predictions_view(intact: list[Prediction], changed: list[Prediction], names: tuple[str, str]) -> None:
    """Each prediction's top tokens, intact and changed side by side, and what became of the intact top token."""
    columns = st.columns(len(intact))
    for column, before, after in zip(columns, intact, changed, strict=True):
        top = before.top[0]
        later = after.probability(top.token_id)
        column.metric(f"{_quoted(top.token)} ({before.where}): {names[0]} → {names[1]}",
                      f"{top.probability:.1%} → {later:.1%}", **delta(f"{100 * (later - top.probability):+.1f} points"),
                      help=f"the most probable token of {names[0]}; with {names[1]} it ranks "
                           f"{after.rank(top.token_id)}")
    for before, after in zip(intact, changed):
        st.html(topk_table([f"{before.where}: {names[0]}", f"{after.where}: {names[1]}"],
                           [[c.token for c in before.top], [c.token for c in after.top]],
                           [[c.probability for c in before.top], [c.probability for c in after.top]],
                           LECTURE_SCALE if lecture_mode() else 1.0))


def similarity_view(similarity: float, names: tuple[str, str]) -> None:
    st.metric(f"Sentence embedding: cosine similarity of {names[1]} to {names[0]}", f"{similarity:.4f}",
              help="the mean of the last hidden states over the text's tokens (as sentence-transformers pools "
                   "all-MiniLM-L6-v2); 1 means the same direction")


def losses_view(labels: list[str], intact: TokenLosses, changed: TokenLosses, names: tuple[str, str],
                file_name: str) -> None:
    """The mean loss of each, and the loss of every token side by side."""
    left, right = st.columns(2)
    left.metric(f"Mean loss on the text, {names[0]}", f"{intact.mean:.3f} nats")
    right.metric(f"Mean loss on the text, {names[1]}", f"{changed.mean:.3f} nats",
                 **delta(f"{changed.mean - intact.mean:+.3f}", "inverse"))  # a higher loss is worse
    title = f"Loss per token: {names[0]} (grey) and {names[1]} (orange)"
    show_figure(token_loss_figure(labels, intact.losses, changed.losses, names, title), file_name)
    if not lecture_mode():
        unscored = int(np.isnan(intact.losses).sum())
        st.caption("−log p of each token: a causal LM predicting it from the tokens before; a masked LM with it "
                   "masked (every 7th token per pass); an encoder-decoder's decoder writing the text."
                   + (f" {unscored} token{'s are' if unscored > 1 else ' is'} not scored (the first token, or "
                      "special tokens)." if unscored else ""))


def outcome_section(spec: str, intact: Change, changed: Change, text: str, names: tuple[str, str]) -> None:
    """What the model predicts on `text` with each change (None: intact), and its loss per token."""
    try:
        with progress_bar(f"Predicting, {names[0]}: layer") as progress:
            before = cached_predictions(spec, intact, text, progress)
        with progress_bar(f"Predicting, {names[1]}: layer") as progress:
            after = cached_predictions(spec, changed, text, progress)
    except NoMaskError as missing:
        st.info(f"{missing} Then the page shows the fill-mask predictions of {names[0]} and {names[1]}.")
    except NoPredictions as none:
        st.info(str(none))
        with st.spinner("Embedding the text…"):
            similarity = cosine_similarity(cached_embedding(spec, intact, text), cached_embedding(spec, changed, text))
        similarity_view(similarity, names)
    else:
        predictions_view(before, after, names)
    try:
        with progress_bar(f"Scoring every token, {names[0]}: layer") as progress:
            before = cached_losses(spec, intact, text, progress)
        with progress_bar(f"Scoring every token, {names[1]}: layer") as progress:
            after = cached_losses(spec, changed, text, progress)
    except LossError as none:
        st.caption(f"No loss per token: {none}")
        return
    losses_view(readable_tokens(cached_model(spec), before.tokens), before, after, names,
                file_stem("loss-per-token", spec, names[1]))
