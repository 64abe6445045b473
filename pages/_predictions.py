"""The Heads page's predictions: a causal LM's next tokens after the text and after any of its tokens,
a masked LM's fill-mask at each mask token; other models get a short note."""
import streamlit as st

from models import AttentionRun, LoadedModel, RunError
from models.core.predictions import (
    FillMask,
    NextTokens,
    NoMaskError,
    fill_mask,
    next_token_predictions,
    run_next_tokens,
)
from pages._probe import Probe, probe_ids
from pages._shared import bound, cached_model, lecture_mode
from pages._widgets import special_tokens_ui, token_default
from viz.labels import display_token, markdown_literal
from viz.predictions import topk_table
from viz.theme import LECTURE_SCALE

AFTER_KEY, TOP_K_KEY, SPECIAL_KEY = "predict_after", "top_k", "special"
TOP_K_CHOICES = (3, 5, 10, 20)


def next_tokens(loaded: LoadedModel, run: AttentionRun, key: tuple, probe: Probe | None, position: int, top_k: int,
                include_special: bool) -> NextTokens:
    """From the run's kept hidden states (no forward pass); by a forward pass of its own for a model
    whose head models.core.lm_head can't reproduce."""
    if run.final_hidden is not None:
        return run_next_tokens(loaded, run, position, top_k, include_special)
    return cached_next_tokens(*key, probe, position, top_k, include_special)


@st.cache_data(max_entries=16, show_spinner=False)  # each holds a [vocab] distribution
def cached_next_tokens(spec: str, text: str, text_b: str, probe: Probe | None, position: int, top_k: int,
                       include_special: bool) -> NextTokens:
    source = probe_ids(spec, *probe) if probe else text
    return next_token_predictions(cached_model(spec), source, top_k, position, include_special=include_special,
                                  text_pair=None if probe else text_b or None)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_fill_mask(spec: str, text: str, text_b: str, top_k: int, include_special: bool) -> FillMask:
    return fill_mask(cached_model(spec), text, top_k, include_special=include_special, text_pair=text_b or None)


def _label(run: AttentionRun, position: int) -> str:
    return f"{position} {display_token(run.labels[position])}"


def controls_ui(run: AttentionRun | None) -> tuple[int | None, int, bool]:
    """(the position to predict after, or None without a picker; top k; show special tokens)."""
    columns = st.columns([3, 1, 1], vertical_alignment="bottom")
    position = None
    if run is not None:
        labels = [_label(run, i) for i in range(run.n)]
        last = None if token_default(AFTER_KEY, labels[-1]) is None else run.n - 1
        chosen = columns[0].selectbox("Also predict after token", labels, index=last, **bound(AFTER_KEY),
                                      help="the model's next-token distribution at any position of the text: what "
                                           "it expected there, next to what the text has")
        position = labels.index(chosen)
    top_k = columns[1].select_slider("Top k", TOP_K_CHOICES, value=5, **bound(TOP_K_KEY))
    return position, top_k, special_tokens_ui(SPECIAL_KEY, columns[2])


def _table(labels: list[str], columns: list) -> None:
    """columns: Candidate lists, one per label, drawn as the Checkpoints page's table."""
    st.html(topk_table(labels, [[c.token for c in top] for top in columns],
                       [[c.probability for c in top] for top in columns], LECTURE_SCALE if lecture_mode() else 1.0,
                       [[c.special for c in top] for top in columns]))


def _column(run: AttentionRun, position: int) -> str:
    end = ", the end" if position == run.n - 1 else ""
    return f"after “{display_token(run.labels[position])}” ({position}{end})"


def _what_follows(run: AttentionRun, prediction: NextTokens) -> str:
    """What the text really has after the chosen position, with the probability and rank the model gave it."""
    at, following = prediction.position, prediction.following
    return (f"The text goes on with **“{markdown_literal(display_token(run.labels[at + 1]))}”** after "
            f"“{markdown_literal(display_token(run.labels[at]))}” ({at}): the model gave it "
            f"{prediction.probabilities[following]:.1%}, rank {prediction.rank(following):,} of "
            f"{len(prediction.probabilities):,}.")


def next_token_section(loaded: LoadedModel, run: AttentionRun, key: tuple, probe: Probe | None) -> None:
    position, top_k, special = controls_ui(run)
    last = run.n - 1
    shown = [last] if position == last else [position, last]
    predictions = [next_tokens(loaded, run, key, probe, p, top_k, special) for p in shown]
    _table([_column(run, p) for p in shown], [p.top for p in predictions])
    if position != last:
        st.markdown(_what_follows(run, predictions[0]))
    if not lecture_mode():
        st.caption(f"The model's softmax over its {len(predictions[-1].probabilities):,} tokens at that position, "
                   "from its own logits; special tokens " + ("are listed and marked." if special else
                                                             "are left out of the list (their share stays in the "
                                                             "distribution)."))


def fill_mask_section(loaded: LoadedModel, key: tuple) -> None:
    _, top_k, special = controls_ui(None)
    try:
        filled = cached_fill_mask(*key, top_k, special)
    except NoMaskError:
        st.info(f"Put {markdown_literal(loaded.tokenizer.mask_token)} in the text to see what "
                f"{markdown_literal(loaded.spec)} predicts there.")
        return
    _table([f"mask {i + 1} (position {m.position})" for i, m in enumerate(filled.masks)], [m.top for m in filled.masks])
    if not lecture_mode():
        st.caption("Each mask's top predictions with the probabilities of transformers' fill-mask pipeline; special "
                   "tokens " + ("are listed and marked." if special else "are left out of the list."))


def predictions_section(loaded: LoadedModel, run: AttentionRun, key: tuple, probe: Probe | None) -> None:
    """key: (spec, text, sentence B) of the run; probe: (length, seed) when the run is the probe's. Shown
    in lecture mode too: a decoder's next token is one of the essentials."""
    try:
        if loaded.has_lm_head:
            st.subheader("Next-token predictions")
            next_token_section(loaded, run, key, probe)
        elif loaded.has_mlm_head:
            st.subheader("Fill-mask predictions")
            fill_mask_section(loaded, key)
        elif not lecture_mode():
            what = "an encoder-decoder: this page shows its attention, not its predictions" \
                if loaded.kind == "encoder-decoder" else ("without a prediction head here (no masked-LM or next-token "
                                                         "head), so it predicts no words; a …ForMaskedLM model with "
                                                         "a mask in the text, or a decoder such as smollm2, does")
            st.caption(f"Predictions: {markdown_literal(loaded.spec)} is {what}.")
    except RunError as error:
        st.error(str(error))
