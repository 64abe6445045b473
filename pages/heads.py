"""Attention heads: every head at a glance, one head or an aggregate in detail, the model's predictions,
head statistics, words and sentence pairs, the induction probe, bertviz offline, and exports."""
import functools

import numpy as np
import streamlit as st

from models import AttentionRun, LoadedModel, attention_stacks
from models.analysis.aggregation import Aggregation, aggregate, rollout_layers
from models.analysis.export import matrix_csv, run_npz
from models.analysis.head_stats import HeadMetric, HeadStatistics, head_statistics
from models.analysis.matrix_view import MatrixView, matrix_view
from models.analysis.neuron import NeuronViewUnsupported, neuron_vectors
from models.analysis.pairs import PAIR_BLOCKS, has_pair
from models.analysis.words import special_token_mask, stack_word_spans
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
    bound,
    cached_model,
    cached_run,
    current_model,
    current_run,
    current_spec,
    current_texts,
    lecture_mode,
    overview_grid,
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
from viz.heatmap import attention_heatmap
from viz.labels import display_token
from viz.overview import ThumbnailGrid, heads_overview
from viz.stats import stats_heatmap, stats_table
from viz.theme import IMAGE_FORMATS, LECTURE_SCALE, file_stem

LAYER_KEY, HEAD_KEY, STACK_KEY, OVERVIEW_KEY = "layer", "head", "stack", "overview"
AGGREGATION_KEY, WORDS_KEY, PAIR_KEY, FORMAT_KEY = "aggregation", "words", "pair", "image_format"
ROLLOUT_TOKEN_KEY, METRIC_KEY, STATS_GRID_KEY, STATS_TABLE_KEY = "rollout_token", "metric", "stats_grid", "stats_table"
STATISTICS_KEY = "statistics"
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
                block: str) -> ThumbnailGrid:
    lens = cached_lens(spec, text, text_b, probe, stack_name, words, block)
    return overview_grid(lens.apply(_stack(spec, text, text_b, probe, stack_name).attentions))


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_rollout(spec: str, text: str, text_b: str, probe: Probe | None, stack_name: str) -> np.ndarray:
    rollouts = rollout_layers(_stack(spec, text, text_b, probe, stack_name).attentions)  # [layers, n, n]
    rollouts.setflags(write=False)
    return rollouts


@st.cache_data(max_entries=16, show_spinner=False)
def cached_statistics(spec: str, text: str, text_b: str, probe: Probe | None, stack_name: str) -> HeadStatistics:
    run, stack = _run(spec, text, text_b, probe), _stack(spec, text, text_b, probe, stack_name)
    special = special_token_mask(cached_model(spec), stack.key_tokens) if stack_name == "decoder" else run.special_mask
    return head_statistics(stack.attentions, stack.key_tokens, special, stack.causal)


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


def view_ui(square: bool, pair: bool, has_words: bool) -> tuple[Aggregation, bool, str]:
    """(aggregation, word level, sentence-pair block) of the focused view."""
    columns = st.columns(2) + st.columns([1, 1])
    options = [label for how, label in AGGREGATION_LABELS.items() if square or how != Aggregation.ROLLOUT]
    shown = columns[0].segmented_control(  # rollout needs self-attention
        "Show", options, default=AGGREGATION_LABELS[Aggregation.HEAD], required=True, **bound(AGGREGATION_KEY),
        help="one head; the mean or max of the focused layer's heads; the mean of all heads; "
             "or the rollout: the layers' mean attention multiplied up to the focused layer")
    block = "all"
    if pair:
        block = columns[1].segmented_control("Sentences", PAIR_BLOCKS, default="all", required=True,
                                             **bound(PAIR_KEY), help="A->B: sentence A's queries, sentence B's keys")
    words = columns[2].toggle("Words", **bound(WORDS_KEY), disabled=not has_words,
                              help="merge sub-word tokens into words: sum over a word's key pieces, "
                                   "mean over its query pieces" + ("" if has_words else " (the probe's random "
                                                                   "tokens make no words)"))
    columns[3].segmented_control("Camera saves", CAMERA_FORMATS, default=CAMERA_FORMATS[0], required=True,
                                 **bound(FORMAT_KEY),
                                 help="the format of the camera button above every figure (works offline)")
    return AGGREGATION_OF.get(shown, Aggregation.HEAD), words and has_words, block or "all"


def rollout_token_ui(tokens: list[str]) -> int:
    labels = [f"{i} {display_token(t)}" for i, t in enumerate(tokens)]
    forget_unless_offered(ROLLOUT_TOKEN_KEY, labels)  # a token of another text
    return labels.index(st.selectbox("Which input tokens does this token draw on?", labels, **bound(ROLLOUT_TOKEN_KEY)))


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
    layers, heads = stack.attentions.shape[:2]
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


def statistics_section(key: tuple, stack, focused: tuple[int, int], default: HeadMetric | None = None) -> None:
    """`default`: the metric shown until one is picked (the induction score on the probe)."""
    box = lazy_section("Head statistics: entropy, distance and where each head looks", STATISTICS_KEY)
    if not box.open:
        return
    with box:
        if stack.name not in SELF_STACKS:
            st.info("Head statistics are for self-attention: pick the encoder or decoder stack.")
            return
        statistics = cached_statistics(*key, stack.name)
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
            st.caption(f"Uniform attention over the {stack.attentions.shape[-1]} tokens would have entropy "
                       f"{baseline:.2f} nats{past}; lower means more focused heads.")
        if not lecture_mode():
            st.caption(f"{label}: {metric.help}. Computed over all tokens of the input, at token level; "
                       "shares are fractions of a query's attention (0 to 1), averaged over queries.")
        columns = {m.key: METRIC_LABELS[m.key] + ("" if m.unit == "share" else f" ({m.unit})")
                   for m in statistics.available()}
        table = stats_table(statistics.values, columns)
        st.dataframe(table, hide_index=True, height=320, key=STATS_TABLE_KEY, selection_mode="single-row",
                     on_select=safe_callback(_focus_table_row, stack.attentions.shape[1]))
        st.caption("Sort by clicking a column header (e.g. induction, to find the induction heads); select a row to "
                   "focus that head.")


def bertviz_section(key: tuple, run, words: bool, layer: int, head: int) -> None:
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
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.caption(f"{loaded.spec}: {loaded.kind} ({loaded.config.model_type}), {run.num_layers} layers × "
                 f"{run.num_heads} heads{grouped}, {len(stack.query_tokens)} × {len(stack.key_tokens)} tokens.")
    if probe is None and loaded.kind == "decoder":
        probe_button(right, {STATISTICS_KEY: True})
    if probe is not None:
        statistics = cached_statistics(*key, "self-attention")
        st.markdown(induction_line(statistics))
        strongest = statistics.strongest(HeadMetric.INDUCTION, 1)
        if strongest and focus_wanted(LAYER_KEY, HEAD_KEY):
            focus_head(LAYER_KEY, HEAD_KEY, *strongest[0][:2])
    how, words, block = view_ui(stack.name in SELF_STACKS, stack.name == "self-attention" and has_pair(run.segment_ids),
                                has_words=probe is None)
    layer, head = focus_ui(run.num_layers, run.num_heads)
    lens = cached_lens(*key, stack.name, words, block)
    grid = cached_grid(*key, stack.name, words, block)
    overview = heads_overview(grid, (layer, head), f"All heads ({stack.name}): a row per layer, a column per "
                                                   "head (h0, h1, …); click one to focus it",
                              kv_heads=loaded.num_key_value_heads if stack.name in SELF_STACKS else None)
    show(overview, file_stem("heads", loaded.spec, stack.name), key=OVERVIEW_KEY,
         on_select=focus_on_click(OVERVIEW_KEY), selection_mode="points")
    if not lecture_mode():
        st.caption("Each thumbnail is one head's token × token attention, scaled to its own maximum."
                   + (" Grey lines part the query heads that read the same keys and values (one key/value head "
                      "each: kv 0, kv 1, …)." if grouped else ""))
    name = file_stem("attention", loaded.spec, "probe" if probe else "", stack.name, how, f"L{layer}",
                     f"H{head}" if how == Aggregation.HEAD else "")
    shown = focused_section(key, stack, lens, how, layer, head, words, block, name,
                            shared_kv_note(loaded, stack, head))
    predictions_section(loaded, run, key[:3], probe)
    export_section(run, lens, shown, name)
    statistics_section(key, stack, (layer, head), HeadMetric.INDUCTION if probe else None)
    bertviz_section(key, run, words, layer, head)


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
