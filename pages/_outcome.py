"""What a changed model does differently on the text, shown the same way wherever a model is changed
(heads switched off on the Heads at work page, a compressed model B on the Compare page): predictions
side by side, the loss per token, the sentence embedding's similarity. Each takes results computed
(and cached) by the page."""
import numpy as np
import streamlit as st

from models.interventions.loss import TokenLosses
from models.interventions.outcome import Prediction
from pages._shared import lecture_mode, show_figure
from viz.checkpoints import topk_table
from viz.heads_at_work import token_loss_figure
from viz.labels import display_token, markdown_literal
from viz.theme import LECTURE_SCALE


def _quoted(token: str) -> str:
    return f"“{markdown_literal(display_token(token))}”"


def predictions_view(intact: list[Prediction], changed: list[Prediction], names: tuple[str, str]) -> None:
    """Each prediction's top tokens, intact and changed side by side, and what became of the intact top token."""
    columns = st.columns(len(intact))
    for column, before, after in zip(columns, intact, changed, strict=True):
        top = before.top[0]
        later = after.probability(top.token_id)
        column.metric(f"{_quoted(top.token)} ({before.where}): {names[0]} → {names[1]}",
                      f"{top.probability:.1%} → {later:.1%}", f"{100 * (later - top.probability):+.1f} points",
                      help=f"the intact model's most probable token; with {names[1]} it ranks "
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
    right.metric(f"Mean loss on the text, {names[1]}", f"{changed.mean:.3f} nats", f"{changed.mean - intact.mean:+.3f}",
                 delta_color="inverse")  # a higher loss is worse
    title = f"Loss per token: {names[0]} (grey) and {names[1]} (orange)"
    show_figure(token_loss_figure(labels, intact.losses, changed.losses, names, title), file_name)
    if not lecture_mode():
        unscored = int(np.isnan(intact.losses).sum())
        st.caption("−log p of each token: a causal LM predicting it from the tokens before; a masked LM with it "
                   "masked (every 7th token per pass); an encoder-decoder's decoder writing the text."
                   + (f" {unscored} token{'s are' if unscored > 1 else ' is'} not scored (the first token, or "
                      "special tokens)." if unscored else ""))
