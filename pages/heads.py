"""Attention heads: every head at a glance, one head or an aggregate in detail, the model's predictions,
head statistics, words and sentence pairs, the induction probe, bertviz offline, and exports."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
import functools

import numpy as np
import streamlit as st

from models import AttentionRun, LoadedModel, attention_stacks
from models.analysis.aggregation import Aggregation, aggregate, rollout_layers
from models.analysis.export import matrix_csv, run_npz
from models.analysis.head_stats import HeadMetric, HeadStatistics, head_statistics
from models.analysis.matrix_view import MatrixView, matrix_view
from models.analysis.neuron import NeuronViewUnsupported, neuron_vectors
from models.analysis.numerics import block_pooled, block_size, pooled
from models.analysis.pairs import PAIR_BLOCKS, has_pair
from models.analysis.words import special_token_mask, stack_word_spans
from models.core import tiles
from models.core.scores import ScoresUnavailable
from pages._predictions import predictions_section
from pages._probe import (
    Probe,
    cached_probe_run,
    focus_wanted,
    probe_button,
    probe_ids,
    probe_requested,
    probe_run,
    probe_ui,
)
from pages._shared import (
    Slot,
    bound,
    cached_model,
    cached_run,
    current_model,
    current_run,
    current_spec,
    current_texts,
    int_control_state,
    lecture_mode,
    progress_bar,
    run_app_instead,
    safe_callback,
    show_figure,
)
from pages._widgets import (
    METRIC_LABELS,
    focus_head,
    focus_on_click,
    focus_ui,
    forget_unless_offered,
    metric_ui,
    stack_ui,
    token_default,
)
from viz.bars import token_bars
from viz.bertviz_offline import (
    BertvizLimits,
    BertvizUnavailable,
    encoder_decoder_entries,
    head_view_html,
    model_view_html,
    neuron_view_html,
    self_attention_entries,
)
from viz.heatmap import WINDOW_KEY_TICKS, attention_heatmap
from viz.labels import display_token
from viz.overview import ThumbnailGrid, heads_overview, thumbnail_cell, thumbnail_grid
from viz.pooled import pooled_heatmap
from viz.stats import stats_heatmap, stats_table
from viz.text_view import shaded_text
from viz.theme import IMAGE_FORMATS, LECTURE_SCALE, file_stem

LAYER_KEY, HEAD_KEY, STACK_KEY, OVERVIEW_KEY = "layer", "head", "stack", "overview"
AGGREGATION_KEY, WORDS_KEY, PAIR_KEY, FORMAT_KEY = "aggregation", "words", "pair", "image_format"
ROLLOUT_TOKEN_KEY, METRIC_KEY, STATS_GRID_KEY, STATS_TABLE_KEY = "rollout_token", "metric", "stats_grid", "stats_table"
STATISTICS_KEY, POOL_KEY = "statistics", "pool"
WINDOW_SIZE_KEY, WINDOW_QUERY_KEY, WINDOW_KEY_KEY = "window", "window_query", "window_key"
TEXT_TOKEN_KEY, TEXT_DIRECTION_KEY = "text_token", "text_view"
BERTVIZ_KEY, BERTVIZ_TOKENS_KEY, BERTVIZ_ONE_LAYER_KEY = "bertviz", "bertviz_tokens", "bertviz_one_layer"
# Bound widgets keep their option labels in the URL, so options are readable strings (no format_func).
# The Show control's labels (old links name them so: keep them).
AGGREGATION_LABELS = {Aggregation.HEAD: "one head", Aggregation.LAYER_MEAN: "layer mean",
                      Aggregation.LAYER_MAX: "layer max", Aggregation.ALL_MEAN: "mean of all",
                      Aggregation.ROLLOUT: "rollout"}
AGGREGATION_OF = {label: how for how, label in AGGREGATION_LABELS.items()}
CAMERA_FORMATS = tuple(f.upper() for f in IMAGE_FORMATS)
BERTVIZ_TOKEN_CHOICES = (8, 16, 24, 32, 40, 48, 64, 96, 128)  # beyond 128 its HTML runs to tens of MB
SELF_STACKS = ("self-attention", "encoder", "decoder")
BERTVIZ_OFF, HEAD_VIEW, MODEL_VIEW, NEURON_VIEW = "off", "head view", "model view", "neuron view"
POOLS = ("mean", "max")  # how a block of weights becomes one pixel; the max keeps a sharp head visible
LONG_AGGREGATIONS = (Aggregation.HEAD, Aggregation.LAYER_MEAN, Aggregation.ROLLOUT)  # computed in tiles
POOLED_SIZE = 256  # pixels a side of a long run's focused image: about 0.35 MB of weights sent
WINDOW_SIZES = (32, 64, 128, 256, 512)  # tokens a side of the zoom window (tiles.MAX_WINDOW at most)
ITS_ATTENTION, RECEIVED = "its attention", "attention it receives"


# --- cached computations, keyed by (model, text, sentence B, probe, ...) so that widgets never re-run the
# model; probe is (length, seed) when the page shows the induction probe instead of the text, else None ---

def _run(spec: str, text: str, text_b: str, probe: Probe | None) -> AttentionRun:
    return cached_probe_run(spec, *probe) if probe else cached_run(spec, text, text_b)


def _stack(spec: str, text: str, text_b: str, probe: Probe | None, stack_name: str):
    return attention_stacks(_run(spec, text, text_b, probe))[stack_name]


@st.cache_data(max_entries=16, show_spinner=False)
def cached_lens(spec: str, text: str, text_b: str, probe: Probe | None, stack_name: str, words: bool,
                block: str) -> MatrixView:
    """Words are a text's: the probe (token ids) has none."""
    run, stack = _run(spec, text, text_b, probe), _stack(spec, text, text_b, probe, stack_name)
    spans = stack_word_spans(cached_model(spec), run, stack_name, text, text_b or None) if words else (None, None)
    segments = run.segment_ids if stack_name == "self-attention" else None
    return matrix_view(stack.query_labels, stack.key_labels, *spans, segments, block)


# resource caches for what is shared read-only (bytes, read-only arrays): cache_data would
# pickle a copy on every rerun

@st.cache_resource(max_entries=16, show_spinner=False)
def cached_grid(spec: str, text: str, text_b: str, probe: Probe | None, stack_name: str, words: bool,
                block: str, pool: str = "mean") -> ThumbnailGrid:
    """Every head as a thumbnail, mean- or max-pooled (`pool`) to its cell: a long run's from the
    overview pooled while the model ran (token level, whole text)."""
    stack = _stack(spec, text, text_b, probe, stack_name)
    if stack.attentions is None:
        images = stack.weights.overview()[POOLS.index(pool)]  # [layers, heads, <= 96, <= 96]
    else:
        images = cached_lens(spec, text, text_b, probe, stack_name, words, block).apply(stack.attentions)
    cell = thumbnail_cell(*images.shape[:2])
    return thumbnail_grid(pooled(images, cell) if pool == "mean" else block_pooled(images, cell)[1])


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_rollout(spec: str, text: str, text_b: str, probe: Probe | None, stack_name: str) -> np.ndarray:
    rollouts = rollout_layers(_stack(spec, text, text_b, probe, stack_name).attentions)  # [layers, n, n]
    rollouts.setflags(write=False)
    return rollouts


def _special(spec: str, run: AttentionRun, stack) -> np.ndarray:
    """[k] the special tokens among a stack's keys."""
    return special_token_mask(cached_model(spec), stack.key_tokens) if stack.name == "decoder" else run.special_mask


@st.cache_data(max_entries=16, show_spinner=False)
def cached_statistics(spec: str, text: str, text_b: str, probe: Probe | None, stack_name: str) -> HeadStatistics:
    run, stack = _run(spec, text, text_b, probe), _stack(spec, text, text_b, probe, stack_name)
    return head_statistics(stack.attentions, stack.key_tokens, _special(spec, run, stack), stack.causal)


# a long run's views that recompute every head run in the page with a progress bar, so they are
# cached as Slots (pages._shared.Slot): a rerun stops them and nothing half-done is kept

@st.cache_resource(max_entries=8, show_spinner=False)
def _long_statistics_slot(spec: str, text: str, text_b: str, stack_name: str) -> Slot:
    return Slot()


@st.cache_resource(max_entries=8, show_spinner=False)
def _rollout_slot(spec: str, text: str, text_b: str, stack_name: str, layer: int, token: int | None) -> Slot:
    """token None: the pooled rollout; else that token's rollout row."""
    return Slot()


def statistics_of(key: tuple, stack_name: str) -> HeadStatistics:
    """The head statistics of a stack, in tiles for a long run (with a progress bar)."""
    stack = _stack(*key, stack_name)
    if stack.attentions is not None:
        return cached_statistics(*key, stack_name)
    special = _special(key[0], _run(*key), stack)
    with progress_bar("Computing head statistics: layer") as progress:
        return _long_statistics_slot(*key[:3], stack_name).get(
            lambda: tiles.head_statistics(stack.weights, stack.key_tokens, special, progress))


def long_rollout(key: tuple, stack, layer: int, token: int | None) -> np.ndarray:
    """A long run's rollout after `layer`: pooled to POOLED_SIZE a side (token None) or `token`'s row [n]."""
    with progress_bar("Computing the rollout: layer") as progress:
        return _rollout_slot(*key[:3], stack.name, layer, token).get(
            lambda: tiles.pooled_rollout(stack.weights, layer, POOLED_SIZE, progress) if token is None
            else tiles.rollout_row(stack.weights, layer, token, progress))


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_pooled_head(spec: str, text: str, text_b: str, stack_name: str, layer: int,
                       head: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A long run's head (None: the layer mean) as (mean, max) pooled images [<= POOLED_SIZE, <= POOLED_SIZE]."""
    images = tiles.pooled_head(_stack(spec, text, text_b, None, stack_name).weights, layer, head, POOLED_SIZE)
    for image in images:
        image.setflags(write=False)
    return images


@st.cache_data(max_entries=2, show_spinner=False)
def cached_neuron_vectors(spec: str, text: str, text_b: str, probe: Probe | None) -> tuple[np.ndarray, np.ndarray]:
    if probe:
        return neuron_vectors(cached_model(spec), probe_ids(spec, *probe))
    return neuron_vectors(cached_model(spec), text, text_b or None)


@st.cache_data(max_entries=6, show_spinner=False)
def cached_bertviz(spec: str, text: str, text_b: str, probe: Probe | None, view: str, words: bool, max_tokens: int,
                   layers: tuple[int, ...], layer: int, head: int, zoom: float) -> str:
    key = (spec, text, text_b, probe)
    run, limits = _run(*key), BertvizLimits(max_tokens=max_tokens)
    if view == NEURON_VIEW:
        queries, keys = cached_neuron_vectors(*key)
        lens = cached_lens(*key, "self-attention", False, "all")
        entries = self_attention_entries(run.attentions, run.labels, lens.sentence_b_start, limits, queries, keys)
        return neuron_view_html(entries, run.causal, layer, head, limits, zoom)
    if run.decoder_tokens is not None:
        lenses = {name: cached_lens(*key, name, words, "all") for name in ("encoder", "decoder", "cross")}
        entries = encoder_decoder_entries(lenses["encoder"].apply(run.attentions),
                                          lenses["decoder"].apply(run.decoder_attentions),
                                          lenses["cross"].apply(run.cross_attentions),
                                          lenses["encoder"].query_tokens, lenses["decoder"].query_tokens, limits)
    else:
        lens = cached_lens(*key, "self-attention", words, "all")
        entries = self_attention_entries(lens.apply(run.attentions), lens.query_tokens, lens.sentence_b_start, limits)
    if view == HEAD_VIEW:
        return head_view_html(entries, list(layers), layer, limits, zoom)
    return model_view_html(entries, list(layers), limits, zoom)


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


def _focus_table_row(heads: int) -> None:
    rows = st.session_state[STATS_TABLE_KEY]["selection"]["rows"]
    if rows:
        focus_head(LAYER_KEY, HEAD_KEY, *divmod(rows[0], heads))


def view_ui(square: bool, pair: bool, has_words: bool, long: bool = False) -> tuple[Aggregation, bool, str]:
    """(aggregation, word level, sentence-pair block) of the focused view; a long run offers the
    aggregations computed in tiles, at token level."""
    columns = st.columns(2) + st.columns([1, 1])
    options = [label for how, label in AGGREGATION_LABELS.items()
               if (square or how != Aggregation.ROLLOUT) and (not long or how in LONG_AGGREGATIONS)]
    forget_unless_offered(AGGREGATION_KEY, options)  # layer max, left from a short text
    shown = columns[0].segmented_control(  # rollout needs self-attention
        "Show", options, default=AGGREGATION_LABELS[Aggregation.HEAD], required=True, **bound(AGGREGATION_KEY),
        help="one head; the mean or max of the focused layer's heads; the mean of all heads; "
             "or the rollout: the layers' mean attention multiplied up to the focused layer")
    block = "all"
    if pair:
        block = columns[1].segmented_control("Sentences", PAIR_BLOCKS, default="all", required=True,
                                             **bound(PAIR_KEY), help="A->B: sentence A's queries, sentence B's keys")
    why_not = " (the probe's random tokens make no words)" if not long else " (a long text is shown token by token)"
    words = columns[2].toggle("Words", **bound(WORDS_KEY), disabled=not has_words,
                              help="merge sub-word tokens into words: sum over a word's key pieces, "
                                   "mean over its query pieces" + ("" if has_words else why_not))
    columns[3].segmented_control("Camera saves", CAMERA_FORMATS, default=CAMERA_FORMATS[0], required=True,
                                 **bound(FORMAT_KEY),
                                 help="the format of the camera button above every figure (works offline)")
    return AGGREGATION_OF.get(shown, Aggregation.HEAD), words and has_words, block or "all"


def pool_ui() -> str:
    """How the overview (and a long text's focused image) turns a block of weights into a pixel."""
    return st.segmented_control(
        "Pooling", POOLS, default=POOLS[0], required=True, **bound(POOL_KEY),
        help="each thumbnail pixel stands for a block of queries × keys: their mean weight, or their largest "
             "(max keeps a sharp head visible, say one that looks at the previous token, at any length)") or POOLS[0]


def window_ui(q: int, k: int) -> tuple[slice, slice]:
    """(queries, keys) of the zoom window on a long text's focused head, from its size and first query and key."""
    left, middle, right = st.columns(3)
    size = left.select_slider("Zoom window (tokens a side)", WINDOW_SIZES, value=128, **bound(WINDOW_SIZE_KEY))
    first_query = middle.number_input("First query", 0, q - 1, 0, step=size // 2,
                                      **int_control_state(WINDOW_QUERY_KEY, 0, q - 1, "first query", "this text"))
    first_key = right.number_input("First key", 0, k - 1, 0, step=size // 2,
                                   **int_control_state(WINDOW_KEY_KEY, 0, k - 1, "first key", "this text"))
    return slice(first_query, min(q, first_query + size)), slice(first_key, min(k, first_key + size))


def rollout_token_ui(tokens: list[str], causal: bool) -> int:
    labels = [f"{i} {display_token(t)}" for i, t in enumerate(tokens)]
    # a causal model's first token can only draw on itself: its last token is the telling default
    index = len(labels) - 1 if causal else 0
    index = None if token_default(ROLLOUT_TOKEN_KEY, labels[index]) is None else index
    return labels.index(st.selectbox("Which input tokens does this token draw on?", labels, index=index,
                                     **bound(ROLLOUT_TOKEN_KEY)))


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

def shared_kv_note(loaded: LoadedModel, stack, head: int) -> str:
    """" · key/value head 1, shared with heads 3–5" for a self-attention head under grouped-query attention."""
    if stack.name not in SELF_STACKS or loaded.num_key_value_heads >= loaded.num_heads:
        return ""
    group = loaded.kv_group(head)
    sharing = loaded.kv_group_heads(group)
    return f" · key/value head {group}, shared with heads {sharing[0]}–{sharing[-1]}"


def view_title(how: Aggregation, layer: int, head: int, stack, words: bool, block: str, kv_note: str = "") -> str:
    """kv_note (shared_kv_note) follows a single head's title."""
    layers, heads = stack.weights.shape[:2]
    title = {
        Aggregation.HEAD: f"Layer {layer}, head {head}",
        Aggregation.LAYER_MEAN: f"Layer {layer}, mean of its {heads} heads",
        Aggregation.LAYER_MAX: f"Layer {layer}, max over its {heads} heads",
        Aggregation.ALL_MEAN: f"Mean of all {layers} × {heads} heads",
        Aggregation.ROLLOUT: f"Attention rollout up to layer {layer}",
    }[how] + f" ({stack.name})" + (kv_note if how == Aggregation.HEAD else "")
    extras = (["words"] if words else []) + ([block.replace("->", "→")] if block != "all" else [])
    return title + (": " + ", ".join(extras) if extras else "")


def focused_section(key: tuple, stack, lens: MatrixView, how: Aggregation, layer: int, head: int,
                    words: bool, block: str, name: str, kv_note: str) -> np.ndarray:
    """The focused head or aggregate as a heatmap (and the rollout's bars); returns the shown matrix."""
    if how == Aggregation.ROLLOUT:
        matrix = cached_rollout(*key, stack.name)[layer]
    else:
        matrix = aggregate(stack.attentions, how, layer, head)
    shown = lens.apply(matrix)
    title = view_title(how, layer, head, stack, words, block, kv_note)
    fig = attention_heatmap(shown, lens.query_tokens, lens.key_tokens, title=title,
                            causal=stack.causal and block == "all")
    show(fig, name)
    notes = {
        Aggregation.LAYER_MAX: "Each cell is the largest weight any head of the layer gives it, so rows no longer sum "
                               "to 1.",
        Aggregation.ROLLOUT: "Rollout (Abnar & Zuidema 2020): per layer the heads' mean A becomes 0.5·A + 0.5·I (the "
                             "residual path), and the layers multiply. Row i: how much of each input token has flowed "
                             "into position i.",
    }
    if how in notes and not lecture_mode():
        st.caption(notes[how])
    if block != "all" and not lecture_mode():
        st.caption(f"{block.replace('->', '→')}: the block of the full attention; a row shows the share of that "
                   "query's attention landing in the other block, so rows need not sum to 1.")
    if stack.causal and block == "all":
        st.caption("Grey cells are the masked future: a causal model's query never sees later tokens.")
    if how == Aggregation.ROLLOUT:
        token = rollout_token_ui(lens.query_tokens, stack.causal)
        bars = token_bars(shown[token], lens.key_tokens,
                          f"What “{display_token(lens.query_tokens[token])}” (position {token}) draws on "
                          f"after layer {layer}", "share of input")
        show(bars, file_stem("rollout", key[0], stack.name, f"L{layer}", f"token{token}"))
    return shown


def long_focused_section(key: tuple, stack, how: Aggregation, layer: int, head: int, pool: str, title: str,
                         name: str, kv_note: str = "") -> tuple[np.ndarray | None, list[str], list[str]]:
    """A long run's focused head (or layer mean, or rollout): the whole of it pooled to one image, and a
    window of its exact weights, with controls for it. Returns the window shown (matrix, query labels,
    key labels); the rollout has no window, nor its controls (None)."""
    _, _, q, k = stack.weights.shape
    rollout = how == Aggregation.ROLLOUT  # exact rollout values cost a whole rollout per query: no zoom window
    if rollout:
        image, value_name, window = long_rollout(key, stack, layer, None), "mean rollout", None
    else:
        window = rows, cols = window_ui(q, k)
        image = cached_pooled_head(*key[:3], stack.name, layer, head if how == Aggregation.HEAD else None)
        image, value_name = image[POOLS.index(pool)], f"{pool} weight"
    row_block, col_block = block_size(q, POOLED_SIZE), block_size(k, POOLED_SIZE)
    if kv_note:
        st.caption(kv_note.removeprefix(" · ").capitalize())
    whole, note = st.columns(2)  # the whole head, and below it across the page the window it zooms into
    with whole:
        show(pooled_heatmap(image, row_block, col_block, f"{title}: all {q:,} × {k:,} tokens", value_name,
                            stack.causal, window), name + "_pooled")
    with note:
        if not lecture_mode():
            st.caption(f"The whole {'rollout' if rollout else 'head'} at a glance: each pixel is the {value_name} of "
                       f"a block of {row_block} queries × {col_block} keys"
                       + ("" if rollout else " (the Pooling control)") + "; colours stop darkening at the top 2% "
                       "of blocks, so an attention sink doesn't wash out the rest. "
                       + ("Exact rollout values cost a whole rollout per query: the text view below shows one "
                          "token's row." if rollout else
                          "The red box is the zoom window, shown below: exact weights, with hover.")
                       + (" Grey: the masked future." if stack.causal else ""))
    if rollout:
        return None, [], []
    matrix = tiles.window(stack.weights, layer, head if how == Aggregation.HEAD else None, rows, cols)
    query_labels, key_labels = stack.query_labels[rows], stack.key_labels[cols]
    show(attention_heatmap(matrix, query_labels, key_labels, causal=stack.causal, first_query=rows.start,
                           first_key=cols.start, key_ticks=WINDOW_KEY_TICKS,
                           title=f"{title}: queries {rows.start}–{rows.stop - 1} × keys {cols.start}–{cols.stop - 1}, "
                                 "exact"), name + "_window")
    return matrix, query_labels, key_labels


def text_view_ui(queries: int, keys: int, rollout: bool) -> tuple[int, bool]:
    """(the chosen token's position, whether its own attention is shown rather than what it receives)."""
    directions = (ITS_ATTENTION,) if rollout else (ITS_ATTENTION, RECEIVED)
    forget_unless_offered(TEXT_DIRECTION_KEY, directions)
    left, right = st.columns([1, 2])
    direction = right.segmented_control(
        "Shade the text by", directions, default=ITS_ATTENTION, required=True, **bound(TEXT_DIRECTION_KEY),
        help="its attention: where the token looks (its row); attention it receives: how much every token "
             "looks at it (its column)" + (" — the rollout has rows only" if rollout else ""))
    row = direction != RECEIVED
    count = queries if row else keys
    token = left.number_input("Token (position)", 0, count - 1, token_default(TEXT_TOKEN_KEY, count - 1),
                              **int_control_state(TEXT_TOKEN_KEY, 0, count - 1, "token", "this text"))
    return int(token), row


def text_values(key: tuple, stack, how: Aggregation, layer: int, head: int, token: int, row: bool) -> np.ndarray:
    """The row (row=True) or column of the focused view for `token`, at token level: [keys] or [queries]."""
    if stack.attentions is not None:
        matrix = cached_rollout(*key, stack.name)[layer] if how == Aggregation.ROLLOUT \
            else aggregate(stack.attentions, how, layer, head)
        return matrix[token] if row else matrix[:, token]
    if how == Aggregation.ROLLOUT:
        return long_rollout(key, stack, layer, token)
    one = head if how == Aggregation.HEAD else None
    return (tiles.query_row if row else tiles.key_column)(stack.weights, layer, one, token)


def text_view_section(key: tuple, stack, how: Aggregation, layer: int, head: int, title: str) -> None:
    st.subheader("Text view: one token's attention over the whole text")  # lecture mode too: it reads at any size
    rollout = how == Aggregation.ROLLOUT
    token, row = text_view_ui(len(stack.query_tokens), len(stack.key_tokens), rollout)
    values = text_values(key, stack, how, layer, head, token, row)
    chosen = (stack.query_labels if row else stack.key_labels)[token]
    labels, tokens = (stack.key_labels, stack.key_tokens) if row else (stack.query_labels, stack.query_tokens)
    self_attention = stack.query_tokens == stack.key_tokens
    what = (f"What “{display_token(chosen)}” ({token}) draws on" if rollout else
            f"Where “{display_token(chosen)}” ({token}) looks" if row else
            f"Who looks at “{display_token(chosen)}” ({token})")
    st.html(shaded_text(labels, tokens, values, token if self_attention else None, f"{what}: {title}",
                        "share of input" if rollout else "weight", LECTURE_SCALE if lecture_mode() else 1.0))
    if not lecture_mode():
        st.caption("Each token is shaded by its weight, scaled to the largest; hover a token for its position "
                   "and exact value. The chosen token is outlined.")


def export_section(run, lens: MatrixView | None, shown: np.ndarray | None, name: str,
                   labels: tuple[list[str], list[str]] | None = None) -> None:
    """labels: (query, key) labels of `shown` where they aren't the lens's (a long run's window);
    shown None: no matrix to save (a long run's rollout)."""
    query_labels, key_labels = labels or (lens.query_tokens, lens.key_tokens)
    long = run.attentions is None
    with section("Export"):
        st.caption("Every figure: the camera button in its top-right corner saves it (PNG at 3× or SVG, as chosen "
                   "above). The data: " + ("the window of exact weights shown above (a long run keeps no "
                                           "n × n weights to save whole)." if long else
                                           "the whole run, or the matrix shown above."))
        left, right = st.columns(2)
        if not long:
            left.download_button(
                f"Run as NPZ ({run.num_layers} layers × {run.num_heads} heads, tokens)",
                data=functools.partial(run_npz, run), file_name=f"{file_stem('attention', run.model_spec)}.npz",
                mime="application/octet-stream", on_click="ignore", icon=":material/download:",
            )
        if shown is None:
            return
        right.download_button(
            "This matrix as CSV", data=functools.partial(matrix_csv, shown, query_labels, key_labels),
            file_name=f"{name}.csv", mime="text/csv", on_click="ignore", icon=":material/download:",
        )


def statistics_section(key: tuple, stack, focused: tuple[int, int], default: HeadMetric | None = None) -> None:
    """`default`: the metric shown until one is picked (the induction score on the probe)."""
    box = lazy_section("Head statistics: entropy, distance and where each head looks", STATISTICS_KEY)
    if not box.open:
        return
    with box:
        if stack.name not in SELF_STACKS:
            st.info("Head statistics are for self-attention: pick the encoder or decoder stack.")
            return
        statistics = statistics_of(key, stack.name)
        metric = metric_ui("Metric", statistics.available(), METRIC_KEY, default)
        label = METRIC_LABELS[metric.key]
        baseline = statistics.uniform_entropy if metric.key == HeadMetric.ENTROPY else None
        fig = stats_heatmap(statistics.values[metric.key], label, metric.unit, focused,
                            f"{label.capitalize()} ({metric.unit}) of every head ({stack.name}); click one to "
                            "focus it", baseline=baseline)
        show(fig, file_stem("head-stats", key[0], stack.name, metric.key), key=STATS_GRID_KEY,
             on_select=focus_on_click(STATS_GRID_KEY), selection_mode="points")
        if baseline is not None:
            past = " (averaged over queries, each seeing its past)" if stack.causal else ""
            st.caption(f"Uniform attention over the {stack.weights.shape[-1]:,} tokens would have entropy "
                       f"{baseline:.2f} nats{past}; lower means more focused heads.")
        if not lecture_mode():
            st.caption(f"{label}: {metric.help}. Computed over all tokens of the input, at token level; "
                       "shares are fractions of a query's attention (0 to 1), averaged over queries.")
        columns = {m.key: METRIC_LABELS[m.key] + ("" if m.unit == "share" else f" ({m.unit})")
                   for m in statistics.available()}
        table = stats_table(statistics.values, columns)
        st.dataframe(table, hide_index=True, height=320, key=STATS_TABLE_KEY, selection_mode="single-row",
                     on_select=safe_callback(_focus_table_row, stack.weights.shape[1]))
        st.caption("Sort by clicking a column header (e.g. induction, to find the induction heads); select a row to "
                   "focus that head.")


def bertviz_section(key: tuple, run, words: bool, layer: int, head: int) -> None:
    with section("bertviz, offline"):
        if run.attentions is None:  # nothing to choose: say so before offering controls that can't work
            st.info(f"bertviz draws from every weight of a run; this text's {run.n:,} tokens make a long run, which "
                    "keeps none (see the pooled image, zoom window and text view above). Its views work on texts of "
                    "up to 512 tokens.")
            return
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


def page_input() -> tuple[LoadedModel, AttentionRun, Probe | None] | None:
    """The sidebar's model and its run on the sidebar's text, or on the induction probe (length, seed)
    when the link asks for it; None after saying why there is nothing to show."""
    loaded = current_model()
    if loaded is None:
        return None
    if probe_requested():
        if loaded.kind == "decoder":
            probe = probe_ui(loaded)
            run = probe_run(loaded, probe)
            return None if run is None else (loaded, run, probe)
        st.info(f"The induction probe is for decoders (causal language models); {loaded.spec} is an "
                f"{loaded.kind}, so the page shows your text.")
    result = current_run(loaded)
    return None if result is None else (*result, None)


def induction_line(statistics: HeadStatistics) -> str:
    strongest = statistics.strongest(HeadMetric.INDUCTION)
    if not strongest:
        return "No token repeats here, so no head has an induction score."
    return "Strongest induction heads on the probe: " + " · ".join(
        f"L{layer} H{head} ({value:.2f})" for layer, head, value in strongest) + "."


def render() -> None:
    st.title("Attention heads")
    found = page_input()
    if found is None:
        return
    loaded, run, probe = found
    text, text_b = ("", "") if probe else current_texts()
    key = (current_spec(), text, text_b, probe)
    stacks = attention_stacks(run)
    stack = stacks[stack_ui(list(stacks), STACK_KEY)]
    grouped = f" ({loaded.num_key_value_heads} key/value heads: grouped-query attention)" \
        if loaded.num_key_value_heads < loaded.num_heads else ""
    # a row whose button takes its label's width (a fixed column cut "Run the induction probe" short)
    header = st.container(horizontal=True, vertical_alignment="center")
    header.caption(f"{loaded.spec}: {loaded.kind} ({loaded.config.model_type}), {run.num_layers} layers × "
                 f"{run.num_heads} heads{grouped}, {len(stack.query_tokens)} × {len(stack.key_tokens)} tokens.")
    if probe is None and loaded.kind == "decoder":
        probe_button(header, {STATISTICS_KEY: True})
    if probe is not None:
        statistics = cached_statistics(*key, "self-attention")
        st.markdown(induction_line(statistics))
        strongest = statistics.strongest(HeadMetric.INDUCTION, 1)
        if strongest and focus_wanted(LAYER_KEY, HEAD_KEY):
            focus_head(LAYER_KEY, HEAD_KEY, *strongest[0][:2])
    long = stack.attentions is None  # a long run (models.core.long_run): views computed in tiles
    if long and not lecture_mode():
        st.caption(f"A long text: {run.n:,} tokens. The page keeps no n × n weights; each view below is computed "
                   "in tiles from the queries and keys the run kept: every head pooled to an image, a zoom window "
                   "of exact weights, and the text view.")
    pair = stack.name == "self-attention" and has_pair(run.segment_ids) and not long
    how, words, block = view_ui(stack.name in SELF_STACKS, pair, has_words=probe is None and not long, long=long)
    layer, head = focus_ui(run.num_layers, run.num_heads)
    pool = pool_ui()
    lens = None if long else cached_lens(*key, stack.name, words, block)
    grid = cached_grid(*key, stack.name, words, block, pool)
    overview = heads_overview(grid, (layer, head), f"All heads ({stack.name}): a row per layer, a column per "
                                                   "head (h0, h1, …); click one to focus it",
                              kv_heads=loaded.num_key_value_heads if stack.name in SELF_STACKS else None)
    show(overview, file_stem("heads", loaded.spec, stack.name), key=OVERVIEW_KEY,
         on_select=focus_on_click(OVERVIEW_KEY), selection_mode="points")
    if not lecture_mode():
        pooling = "" if pool == "mean" and not long else f", {pool}-pooled to its cell"
        st.caption(f"Each thumbnail is one head's token × token attention{pooling}, scaled to its own maximum."
                   + (" Grey lines part the query heads that read the same keys and values (one key/value head "
                      "each: kv 0, kv 1, …)." if grouped else ""))
    name = file_stem("attention", loaded.spec, "probe" if probe else "", stack.name, how, f"L{layer}",
                     f"H{head}" if how == Aggregation.HEAD else "")
    kv_note = shared_kv_note(loaded, stack, head)
    if long:
        title = view_title(how, layer, head, stack, False, "all")  # the key/value note goes above: two figures a row
        shown, *labels = long_focused_section(key, stack, how, layer, head, pool, title, name,
                                              kv_note if how == Aggregation.HEAD else "")
    else:
        shown, labels = focused_section(key, stack, lens, how, layer, head, words, block, name, kv_note), None
    predictions_section(loaded, run, key[:3], probe)
    text_view_section(key, stack, how, layer, head, view_title(how, layer, head, stack, False, "all"))
    export_section(run, lens, shown, name, labels)
    statistics_section(key, stack, (layer, head), HeadMetric.INDUCTION if probe else None)
    bertviz_section(key, run, words, layer, head)


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
