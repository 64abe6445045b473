"""Attention heads: every head at a glance, one head or an aggregate in detail, head statistics,
words and sentence pairs, bertviz offline, and exports."""
import functools

import numpy as np
import streamlit as st

from models import attention_stacks
from models.analysis.aggregation import AGGREGATIONS, ALL_MEAN, HEAD, LAYER_MAX, LAYER_MEAN, ROLLOUT, aggregate
from models.analysis.export import matrix_csv, run_npz
from models.analysis.head_stats import METRIC_BY_KEY, HeadStatistics
from models.analysis.matrix_view import MatrixView
from models.analysis.neuron import NeuronViewUnsupported
from models.analysis.pairs import PAIR_BLOCKS, has_pair
from models.core.scores import ScoresUnavailable
from pages._heads_cache import (
    BERTVIZ_OFF,
    HEAD_VIEW,
    MODEL_VIEW,
    NEURON_VIEW,
    cached_bertviz,
    cached_grid,
    cached_lens,
    cached_rollout,
    cached_statistics,
)
from pages._shared import (
    bound,
    current_run,
    current_spec,
    current_texts,
    int_control_state,
    lecture_mode,
    safe_callback,
    show_figure,
)
from viz.bars import token_bars
from viz.bertviz_offline import BertvizUnavailable
from viz.heatmap import attention_heatmap
from viz.labels import display_token
from viz.overview import heads_overview
from viz.stats import stats_heatmap, stats_table
from viz.theme import IMAGE_FORMATS, LECTURE_SCALE, file_stem

LAYER_KEY, HEAD_KEY, STACK_KEY, OVERVIEW_KEY = "layer", "head", "stack", "overview"
AGGREGATION_KEY, WORDS_KEY, PAIR_KEY, FORMAT_KEY = "aggregation", "words", "pair", "image_format"
ROLLOUT_TOKEN_KEY, METRIC_KEY, STATS_GRID_KEY, STATS_TABLE_KEY = "rollout_token", "metric", "stats_grid", "stats_table"
STATISTICS_KEY = "statistics"
BERTVIZ_KEY, BERTVIZ_TOKENS_KEY, BERTVIZ_ONE_LAYER_KEY = "bertviz", "bertviz_tokens", "bertviz_one_layer"
# Bound widgets keep their option labels in the URL, so options are readable strings (no format_func).
CAMERA_FORMATS = tuple(f.upper() for f in IMAGE_FORMATS)
BERTVIZ_TOKEN_CHOICES = (8, 16, 24, 32, 40, 48, 64, 96, 128)  # beyond 128 its HTML runs to tens of MB
SELF_STACKS = ("self-attention", "encoder", "decoder")


# --- widgets: each returns what it read ---

def show(fig, name: str, **kwargs):
    """show_figure with the camera format chosen on this page."""
    image_format = (st.session_state.get(FORMAT_KEY) or CAMERA_FORMATS[0]).lower()
    return show_figure(fig, name, image_format=image_format, **kwargs)


def section(title: str):
    """A page section; in lecture mode a folded expander, so the projector shows the essentials."""
    if lecture_mode():
        return st.expander(title, expanded=False)
    container = st.container()
    container.subheader(title)
    return container


def lazy_section(title: str, key: str):
    """A folded section whose body the page runs only while it is open (open or not is in the
    URL): its computation waits until someone asks for it."""
    return st.expander(title, key=key, on_change="rerun", bind="query-params")


def _focus(layer: int, head: int) -> None:
    st.session_state[LAYER_KEY], st.session_state[HEAD_KEY] = int(layer), int(head)


def _focus_clicked_point(key: str) -> None:
    points = st.session_state[key]["selection"]["points"]
    if points:
        _focus(*points[0]["customdata"][:2])


def _focus_table_row(heads: int) -> None:
    rows = st.session_state[STATS_TABLE_KEY]["selection"]["rows"]
    if rows:
        _focus(*divmod(rows[0], heads))


def stack_ui(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return st.radio("Attention", names, horizontal=True, **bound(STACK_KEY),
                    help="encoder self-attention, decoder self-attention, or decoder-to-encoder cross-attention")


def view_ui(square: bool, pair: bool) -> tuple[str, bool, str]:
    """(aggregation, word level, sentence-pair block) of the focused view."""
    columns = st.columns(2) + st.columns([1, 1])
    options = AGGREGATIONS if square else AGGREGATIONS[:-1]  # rollout needs self-attention
    how = columns[0].segmented_control(
        "Show", options, default=HEAD, required=True, **bound(AGGREGATION_KEY),
        help="one head; the mean or max of the focused layer's heads; the mean of all heads; "
             "or the rollout: the layers' mean attention multiplied up to the focused layer")
    block = "all"
    if pair:
        block = columns[1].segmented_control("Sentences", PAIR_BLOCKS, default="all", required=True,
                                             **bound(PAIR_KEY), help="A->B: sentence A's queries, sentence B's keys")
    words = columns[2].toggle("Words", **bound(WORDS_KEY),
                              help="merge sub-word tokens into words: sum over a word's key pieces, "
                                   "mean over its query pieces")
    columns[3].segmented_control("Camera saves", CAMERA_FORMATS, default=CAMERA_FORMATS[0], required=True,
                                 **bound(FORMAT_KEY),
                                 help="the format of the camera button above every figure (works offline)")
    return how or HEAD, words, block or "all"


def focus_ui(layers: int, heads: int) -> tuple[int, int]:
    left, right = st.columns(2)
    layer = left.slider("Layer", 0, layers - 1, 0, **int_control_state(LAYER_KEY, 0, layers - 1, "layer"))
    head = right.slider("Head", 0, heads - 1, 0, **int_control_state(HEAD_KEY, 0, heads - 1, "head"))
    return layer, head


def rollout_token_ui(tokens: list[str]) -> int:
    labels = [f"{i} {display_token(t)}" for i, t in enumerate(tokens)]
    if st.session_state.get(ROLLOUT_TOKEN_KEY) not in labels:
        st.session_state.pop(ROLLOUT_TOKEN_KEY, None)  # a token of another text
    return labels.index(st.selectbox("Which input tokens does this token draw on?", labels, **bound(ROLLOUT_TOKEN_KEY)))


def metric_ui(statistics: HeadStatistics) -> str:
    available = [m.key for m in statistics.available()]
    if st.session_state.get(METRIC_KEY) not in available:
        st.session_state.pop(METRIC_KEY, None)  # e.g. "to separators" on a model without them
    return st.selectbox("Metric", available, **bound(METRIC_KEY),
                        help="; ".join(f"{k}: {METRIC_BY_KEY[k].help}" for k in available))


def bertviz_ui() -> tuple[str, int, bool]:
    """(view, tokens sent, only the focused layer)."""
    view = st.segmented_control("bertviz view", (BERTVIZ_OFF, HEAD_VIEW, MODEL_VIEW, NEURON_VIEW), default=BERTVIZ_OFF,
                                required=True, **bound(BERTVIZ_KEY))
    left, right = st.columns(2)
    tokens = left.select_slider("Tokens sent to bertviz (the first ones)", BERTVIZ_TOKEN_CHOICES, value=40,
                                **bound(BERTVIZ_TOKENS_KEY))
    one_layer = right.toggle("Send only the focused layer", **bound(BERTVIZ_ONE_LAYER_KEY),
                             help="the head view shows one layer at a time anyway; the model view then shows one row")
    return view or BERTVIZ_OFF, tokens, one_layer


# --- page sections ---

def view_title(how: str, layer: int, head: int, stack, words: bool, block: str) -> str:
    layers, heads = stack.attentions.shape[:2]
    title = {
        HEAD: f"Layer {layer}, head {head}",
        LAYER_MEAN: f"Layer {layer}, mean of its {heads} heads",
        LAYER_MAX: f"Layer {layer}, max over its {heads} heads",
        ALL_MEAN: f"Mean of all {layers} × {heads} heads",
        ROLLOUT: f"Attention rollout up to layer {layer}",
    }[how] + f" ({stack.name})"
    extras = (["words"] if words else []) + ([block.replace("->", "→")] if block != "all" else [])
    return title + (": " + ", ".join(extras) if extras else "")


def focused_section(key: tuple[str, str, str], stack, lens: MatrixView, how: str, layer: int, head: int,
                    words: bool, block: str, name: str) -> np.ndarray:
    """The focused head or aggregate as a heatmap (and the rollout's bars); returns the shown matrix."""
    if how == ROLLOUT:
        matrix = cached_rollout(*key, stack.name)[layer]
    else:
        matrix = aggregate(stack.attentions, how, layer, head)
    shown = lens.apply(matrix)
    title = view_title(how, layer, head, stack, words, block)
    fig = attention_heatmap(shown, lens.query_tokens, lens.key_tokens, title=title,
                            causal=stack.causal and block == "all")
    show(fig, name)
    notes = {
        LAYER_MAX: "Each cell is the largest weight any head of the layer gives it, so rows no longer sum to 1.",
        ROLLOUT: "Rollout (Abnar & Zuidema 2020): per layer the heads' mean A becomes 0.5·A + 0.5·I (the residual "
                 "path), and the layers multiply. Row i: how much of each input token has flowed into position i.",
    }
    if how in notes and not lecture_mode():
        st.caption(notes[how])
    if block != "all" and not lecture_mode():
        st.caption(f"{block.replace('->', '→')}: the block of the full attention; a row shows the share of that "
                   "query's attention landing in the other block, so rows need not sum to 1.")
    if stack.causal and block == "all":
        st.caption("Grey cells are the masked future: a causal model's query never sees later tokens.")
    if how == ROLLOUT:
        token = rollout_token_ui(lens.query_tokens)
        bars = token_bars(shown[token], lens.key_tokens,
                          f"What “{display_token(lens.query_tokens[token])}” (position {token}) draws on "
                          f"after layer {layer}", "share of input")
        show(bars, file_stem("rollout", key[0], stack.name, f"L{layer}", f"token{token}"))
    return shown


def export_section(run, lens: MatrixView, shown: np.ndarray, name: str) -> None:
    with section("Export"):
        st.caption("Every figure: the camera button in its top-right corner saves it (PNG at 3× or SVG, as chosen "
                   "above). The data: the whole run, or the matrix shown above.")
        left, right = st.columns(2)
        left.download_button(
            f"Run as NPZ ({run.num_layers} layers × {run.num_heads} heads, tokens)",
            data=functools.partial(run_npz, run), file_name=f"{file_stem('attention', run.model_spec)}.npz",
            mime="application/octet-stream", on_click="ignore", icon=":material/download:",
        )
        right.download_button(
            "This matrix as CSV", data=functools.partial(matrix_csv, shown, lens.query_tokens, lens.key_tokens),
            file_name=f"{name}.csv", mime="text/csv", on_click="ignore", icon=":material/download:",
        )


def statistics_section(key: tuple[str, str, str], stack, focused: tuple[int, int]) -> None:
    box = lazy_section("Head statistics: entropy, distance and where each head looks", STATISTICS_KEY)
    if not box.open:
        return
    with box:
        if stack.name not in SELF_STACKS:
            st.info("Head statistics are for self-attention: pick the encoder or decoder stack.")
            return
        statistics = cached_statistics(*key, stack.name)
        metric = METRIC_BY_KEY[metric_ui(statistics)]
        baseline = statistics.uniform_entropy if metric.key == "entropy" else None
        fig = stats_heatmap(statistics.values[metric.key], metric.key, metric.unit, focused,
                            f"{metric.key.capitalize()} ({metric.unit}) of every head ({stack.name}); click one to "
                            "focus it", baseline=baseline)
        show(fig, file_stem("head-stats", key[0], stack.name, metric.key), key=STATS_GRID_KEY,
             on_select=safe_callback(_focus_clicked_point, STATS_GRID_KEY), selection_mode="points")
        if baseline is not None:
            past = " (averaged over queries, each seeing its past)" if stack.causal else ""
            st.caption(f"Uniform attention over the {stack.attentions.shape[-1]} tokens would have entropy "
                       f"{baseline:.2f} nats{past}; lower means more focused heads.")
        if not lecture_mode():
            st.caption(f"{metric.key}: {metric.help}. Computed over all tokens of the input, at token level; "
                       "shares are fractions of a query's attention (0 to 1), averaged over queries.")
        table = stats_table(statistics.values, {m.key: m.key if m.unit == "share" else f"{m.key} ({m.unit})"
                                                for m in statistics.available()})
        st.dataframe(table, hide_index=True, height=320, key=STATS_TABLE_KEY, selection_mode="single-row",
                     on_select=safe_callback(_focus_table_row, stack.attentions.shape[1]))
        st.caption("Sort by clicking a column header; select a row to focus that head.")


def bertviz_section(key: tuple[str, str, str], run, words: bool, layer: int, head: int) -> None:
    with section("bertviz, offline"):
        view, max_tokens, one_layer = bertviz_ui()
        if view == BERTVIZ_OFF:
            st.caption("bertviz's head, model and neuron views of this run, drawn without any network.")
            return
        layers = (layer,) if one_layer else tuple(range(run.num_layers))
        try:
            html = cached_bertviz(*key, view, words, max_tokens, layers, layer, head,
                                  LECTURE_SCALE if lecture_mode() else 1.0)
        except (NeuronViewUnsupported, ScoresUnavailable) as reason:
            st.info(f"No neuron view for this model: {reason}")
            return
        except BertvizUnavailable as missing:
            st.error(f"The bertviz views can't be drawn: {missing}.")
            return
        sent_layers = "all layers" if view == NEURON_VIEW or not one_layer else f"layer {layer} only"
        st.caption(
            f"bertviz writes every weight into its page as text, so its size grows with the square of the tokens "
            f"(about 50 MB at 128 tokens for 6 layers × 12 heads). Sent here: the first {min(max_tokens, run.n)} of "
            f"{run.n} tokens, {sent_layers}, weights rounded to 3 decimals: {len(html) / 1e6:.1f} MB."
            + (" The neuron view shows tokens, whatever the Words switch." if view == NEURON_VIEW and words else "")
            + (" It gets queries and keys recorded from this model (bertviz's own needs its copies of a few model "
               "classes)." if view == NEURON_VIEW else "")
        )
        st.iframe(html, height="content")


st.title("Attention heads")
result = current_run()
if result is not None:
    loaded, run = result
    text, text_b = current_texts()
    key = (current_spec(), text, text_b)
    stacks = attention_stacks(run)
    stack = stacks[stack_ui(list(stacks))]
    st.caption(f"{loaded.spec}: {loaded.kind} ({loaded.config.model_type}), {run.num_layers} layers × "
               f"{run.num_heads} heads, {len(stack.query_tokens)} × {len(stack.key_tokens)} tokens.")
    how, words, block = view_ui(stack.name in SELF_STACKS, stack.name == "self-attention" and has_pair(run.segment_ids))
    layer, head = focus_ui(run.num_layers, run.num_heads)
    lens = cached_lens(*key, stack.name, words, block)
    grid = cached_grid(*key, stack.name, words, block)
    overview = heads_overview(grid, (layer, head), f"All heads ({stack.name}): a row per layer, a column per "
                                                   "head (h0, h1, …); click one to focus it")
    show(overview, file_stem("heads", loaded.spec, stack.name), key=OVERVIEW_KEY,
         on_select=safe_callback(_focus_clicked_point, OVERVIEW_KEY), selection_mode="points")
    if not lecture_mode():
        st.caption("Each thumbnail is one head's token × token attention, scaled to its own maximum.")
    name = file_stem("attention", loaded.spec, stack.name, how, f"L{layer}", f"H{head}" if how == HEAD else "")
    shown = focused_section(key, stack, lens, how, layer, head, words, block, name)
    export_section(run, lens, shown, name)
    statistics_section(key, stack, (layer, head))
    bertviz_section(key, run, words, layer, head)
