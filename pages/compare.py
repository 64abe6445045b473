"""Compare: two models or checkpoints on the same text, head by head, and how every head of a
checkpoint series changes over training."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
from pathlib import Path

import streamlit as st

from models import DEFAULT_MODEL, PRESETS, LoadedModel, ModelLoadError, RunError
from models.analysis.head_stats import HeadMetric
from models.checkpoints.demo import demo_series_dir
from models.checkpoints.discovery import Checkpoint, SeriesError
from models.compare.alignment import AlignedRuns, AlignmentError, align_runs, shared_start
from models.compare.divergence import MATCH_QUERIES, HeadMatching, head_divergence, js_divergence, match_heads
from models.compare.series import SeriesStatistics, run_series, series_checkpoints, series_statistics
from models.core.run import first_tokens_notice, full_weights_tokens, long_run_tokens, run_keeping_weights
from models.core.settings import settings_from_env
from models.interventions.compression import INT8_METHOD, CompressionError
from models.interventions.footprint import forward_seconds, memory_bytes, zero_share
from pages._changed import (
    COMPRESSED_KEPT,
    INT8,
    L1,
    Change,
    cached_changed_run,
    cached_compressed,
    changed_model,
    compressed,
    outcome_section,
)
from pages._shared import (
    bound,
    cached_model,
    cached_run,
    convert_with_progress,
    current_spec,
    current_texts,
    lecture_mode,
    run_app_instead,
    show_figure,
)
from pages._widgets import METRIC_LABELS, focus_on_click, forget_unless_offered, index_control, metric_ui
from viz.compare import (
    difference_heatmap,
    divergence_from_final_figure,
    divergence_heatmap,
    matching_heatmap,
    matching_table,
    query_divergence_bars,
    series_panels,
    shared_zmax,
)
from viz.heatmap import attention_heatmap
from viz.labels import markdown_literal
from viz.theme import file_stem

VIEW_KEY, SERIES_KEY, A_KEY, B_KEY = "compare_view", "series", "model_a", "model_b"
# controls of their own: a link to this page never moves the Heads page's focus
LAYER_KEY, HEAD_KEY, B_HEAD_KEY = "compare_layer", "compare_head", "b_head"
MATRIX_KEY, METRIC_KEY = "divergence_matrix", "series_metric"
TWO_MODELS, SERIES = "Two models", "Checkpoint series"
SIDEBAR_MODEL = "the sidebar's model"
SAME_HEAD, CLOSEST_HEAD = "same layer and head", "closest to A's head"
PRUNE_KEY = "b_prune"
PRUNED_B, INT8_B = "A, L1-pruned", "A, int8 (torchao)"  # B as a compressed copy of A (its last options)


def _signature(checkpoints: list[Checkpoint]) -> tuple:
    return tuple((c.step, (Path(c.spec) / "config.json").stat().st_mtime) for c in checkpoints)


# --- cached computations, keyed by (model A, model B, text, sentence B) ---

def _model(spec: str, change: Change = None) -> LoadedModel:
    return cached_model(spec) if change is None else cached_compressed(spec, *change[1:])


def _loaded_run(spec: str, text: str, text_b: str, change: Change = None, limit: int | None = None):
    """(model, run); `limit`: the run keeps every weight, on the text's first `limit` tokens if it would be long."""
    if limit is not None:
        loaded = _model(spec, change)
        return loaded, run_keeping_weights(loaded, text, text_b or None, settings_from_env().max_text_chars, limit)
    if change is None:
        return cached_model(spec), cached_run(spec, text, text_b)
    return cached_compressed(spec, *change[1:]), cached_changed_run(spec, change, text, text_b)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_limit(spec_a: str, spec_b: str, text: str, text_b: str, change_b: Change = None) -> tuple[int, int] | None:
    """(tokens both models read, tokens of the text) when either would make a long run, else None:
    every weight of every head of both is compared at once."""
    models = (_model(spec_a), _model(spec_b, change_b))
    lengths = [n for n in (long_run_tokens(loaded, text, text_b or None) for loaded in models) if n is not None]
    return (min(full_weights_tokens(loaded) for loaded in models), max(lengths)) if lengths else None


@st.cache_data(max_entries=8, show_spinner=False)
def cached_start(spec_a: str, spec_b: str, text: str, change_b: Change = None) -> str:
    """The text A and B are compared on: all of it, or its start both read whole keeping every weight."""
    models = (_model(spec_a), _model(spec_b, change_b))
    return shared_start(models, text, min(full_weights_tokens(loaded) for loaded in models))


@st.cache_data(max_entries=8, show_spinner=False)
def cached_alignment(spec_a: str, spec_b: str, text: str, text_b: str, change_b: Change = None) -> AlignedRuns:
    """A and B on common positions; change_b (pages._changed.compressed) makes B a compressed copy of spec_b.
    A text too long for either is cut to the start both read whole when their tokenizers differ, else
    (and a sentence pair) to the first tokens."""
    if not text_b and (start := cached_start(spec_a, spec_b, text, change_b)) != text:
        return align_runs(*_loaded_run(spec_a, start, ""), *_loaded_run(spec_b, start, "", change_b), start)
    limit = cached_limit(spec_a, spec_b, text, text_b, change_b)
    limit = limit and limit[0]
    return align_runs(*_loaded_run(spec_a, text, text_b, None, limit),
                      *_loaded_run(spec_b, text, text_b, change_b, limit), text, text_b or None)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_matching(spec_a: str, spec_b: str, text: str, text_b: str, change_b: Change = None) -> HeadMatching:
    aligned = cached_alignment(spec_a, spec_b, text, text_b, change_b)
    return match_heads(aligned.a, aligned.b)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_size(spec: str, change: Change) -> tuple[int, float]:
    """(bytes in memory, share of parameters that are 0) of the model with the change."""
    with changed_model(spec, change) as loaded:
        return memory_bytes(loaded), zero_share(loaded)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_forward_seconds(spec: str, change: Change, text: str) -> float:
    with changed_model(spec, change) as loaded:
        return forward_seconds(loaded, text)


@st.cache_data(max_entries=4, show_spinner=False)
def cached_series(folder: str, signature: tuple, text: str,
                  text_b: str) -> tuple[SeriesStatistics, list[str], str | None]:
    """(the statistics, why checkpoints were left out, why they read only the text's start). `signature`
    (the checkpoints' steps and times) makes a retrained series recompute."""
    settings = settings_from_env()
    checkpoints, _ = series_checkpoints(folder, settings)
    ran = run_series(checkpoints, text, text_b or None, settings)
    return series_statistics(ran.runs, ran.steps), ran.left_out, ran.notice


# --- widgets: each returns what it read ---

def short_name(spec: str) -> str:
    """A model's name for titles: the last folder of a path, the spec otherwise."""
    return Path(spec).name if "/" in spec and Path(spec).expanduser().exists() else spec


def series_ui() -> tuple[str, bool]:
    """(the series folder, whether it is the default: the demo series)."""
    default = str(demo_series_dir())  # built by `python -m models.checkpoints --demo`
    folder = st.text_input("Checkpoint series: a folder of checkpoint-N folders", default, **bound(SERIES_KEY),
                           help="a Hugging Face Trainer output folder; its checkpoints can also be picked as A or B")
    return folder, folder == default


def models_ui(checkpoints: list[Checkpoint]) -> tuple[str, str | None, Change]:
    """(spec of A, spec of B or None, B's compression or None): A defaults to the sidebar's model, B to the
    series' last checkpoint; B may also be a compressed copy of A (then B's spec is A's)."""
    members = [c.spec for c in checkpoints]
    others = members + [p for p in PRESETS if p not in members]
    left, right = st.columns(2)
    a = left.selectbox("Model A", [SIDEBAR_MODEL] + others, accept_new_options=True, **bound(A_KEY),
                       help="a preset, a hub id, a model or checkpoint folder; by default the sidebar's model")
    b = right.selectbox("Model B", others + [PRUNED_B, INT8_B], index=len(members) - 1 if members else None,
                        accept_new_options=True, placeholder="pick or type a model or checkpoint folder",
                        **bound(B_KEY),
                        help="a preset, a hub id, a model or checkpoint folder (e.g. a checkpoint of the series), or A "
                             "compressed: L1-pruned (torch.nn.utils.prune) or quantized to int8 (torchao)")
    spec_a = (current_spec() if a in (None, SIDEBAR_MODEL) else a.strip()) or DEFAULT_MODEL
    if b == PRUNED_B:
        percent = right.slider("Share of each linear weight pruned (%)", 0, 95, 20, step=5, **bound(PRUNE_KEY),
                               help="the smallest-|w| share of every linear layer's weight set to 0")
        return spec_a, spec_a, compressed(L1, percent / 100)
    if b == INT8_B:
        return spec_a, spec_a, compressed(INT8)
    return spec_a, (b or "").strip() or None, None


def focus_ui(layers: int, heads: int, can_match_same: bool) -> tuple[int, int, str]:
    """(layer and head of A, which head of B to show)."""
    columns = st.columns([1, 1, 1.2])
    layer = index_control(columns[0], "Layer of A", layers, LAYER_KEY, "layer", "model A")
    head = index_control(columns[1], "Head of A", heads, HEAD_KEY, "head", "model A")
    options = (SAME_HEAD, CLOSEST_HEAD) if can_match_same else (CLOSEST_HEAD,)
    forget_unless_offered(B_HEAD_KEY, options)  # "same" left over from models of one shape
    which = columns[2].radio("Head of B", options, horizontal=True, **bound(B_HEAD_KEY),
                             help="B's head at the same position, or the head of B whose attention is closest to "
                                  "A's (least Jensen-Shannon divergence)")
    return layer, head, which


# --- page sections ---

def series_members(folder: str, is_demo: bool) -> list[Checkpoint]:
    """The series' checkpoints by step, or [] after saying why there are none."""
    try:
        checkpoints, problems = series_checkpoints(folder, settings_from_env())
    except SeriesError as error:
        st.info(f"{error}" + (" Build the offline demo series on the Checkpoints page (*Train the demo series*, "
                              "a few minutes) or with `python -m models.checkpoints --demo`." if is_demo else ""))
        return []
    if problems:
        st.warning("Left out of the series: " + " ".join(problems))
    st.caption(f"{len(checkpoints)} checkpoints, steps {', '.join(f'{c.step:,}' for c in checkpoints)}.")
    return checkpoints


def load_pair(spec_a: str, spec_b: str, text: str, text_b: str,
              change_b: Change = None) -> tuple[LoadedModel, LoadedModel, AlignedRuns] | None:
    """Both models (B compressed if change_b) and their runs on common positions, or None after saying why not."""
    loaded = []
    for name, spec in (("A", spec_a), ("B", spec_b)):
        try:
            with st.spinner(f"Loading {spec}…"):
                convert_with_progress(spec)
                loaded.append(cached_model(spec))
        except ModelLoadError as error:
            st.error(f"Model {name}: {error}")
            return None
        for notice in loaded[-1].notices if name == "A" or change_b is None else ():
            st.warning(f"Model {name}: {notice}")
    if change_b is not None:
        try:
            with st.spinner(f"Compressing a copy of {spec_b} ({change_b[1]})…"):
                loaded[1] = cached_compressed(spec_b, *change_b[1:])
        except CompressionError as refusal:
            st.error(f"Model B: {refusal}")
            return None
    try:
        with st.spinner("Running both models…"):
            if not text_b and (start := cached_start(spec_a, spec_b, text, change_b)) != text:
                st.info(f"Comparing A and B head by head keeps every weight of every head, so it runs on the start "
                        f"of this text both models read whole: its first {len(start):,} of {len(text):,} characters, "
                        f"up to “{markdown_literal(start.split()[-1])}”.")
            elif limit := cached_limit(spec_a, spec_b, text, text_b, change_b):
                st.info(first_tokens_notice("Comparing A and B head by head", *limit))
            aligned = cached_alignment(spec_a, spec_b, text, text_b, change_b)
    except RunError as error:
        st.error(str(error))
        return None
    except AlignmentError as refusal:
        st.warning(f"A and B can't be compared on this text. {refusal}")
        return None
    return loaded[0], loaded[1], aligned


def describe(name: str, loaded: LoadedModel) -> str:
    return f"{name}: {loaded.spec}, {loaded.kind} ({loaded.config.model_type}), {loaded.num_layers} layers × " \
           f"{loaded.num_heads} heads"


def side_by_side_section(aligned: AlignedRuns, names: tuple[str, str], causal: tuple[bool, bool],
                         matching: HeadMatching) -> tuple[int, int]:
    """A's focused head, B's same or closest head, and B − A, on one colour range; returns A's (layer, head)."""
    layers, heads = aligned.a.shape[:2]
    b_has_every_head = aligned.b.shape[0] >= layers and aligned.b.shape[1] >= heads
    layer, head, which = focus_ui(layers, heads, can_match_same=b_has_every_head)
    if which == SAME_HEAD:
        layer_b, head_b = layer, head
    else:
        layer_b, head_b = int(matching.best_layer[layer, head]), int(matching.best_head[layer, head])
    a, b = aligned.a[layer, head], aligned.b[layer_b, head_b]
    zmax, labels = shared_zmax(a, b), aligned.labels
    heads_shown = ((names[0], layer, head, a, causal[0]), (names[1], layer_b, head_b, b, causal[1]))
    top, bottom = st.columns(2), st.columns(2)
    for column, tag, (name, at_layer, at_head, matrix, is_causal) in zip(top, "AB", heads_shown):
        with column:
            show_figure(attention_heatmap(matrix, labels, labels, f"{tag} ({name}): layer {at_layer}, head {at_head}",
                                          causal=is_causal, zmax=zmax),
                        file_stem("compare", tag, name, f"L{at_layer}", f"H{at_head}"))
    with bottom[0]:
        show_figure(difference_heatmap(b - a, labels, labels, "B − A: red where B attends more, blue where A does",
                                       causal=all(causal)),
                    file_stem("compare", "difference", *names, f"L{layer}", f"H{head}"))
    rows = js_divergence(a, b)  # [m]
    with bottom[1]:
        show_figure(query_divergence_bars(rows, labels,
                                          f"Where they differ: JS divergence per query, mean {rows.mean():.3f}"),
                    file_stem("compare", "query-divergence", *names, f"L{layer}", f"H{head}"))
    st.caption(f"Same axes ({aligned.level}s) and colour range (0 to {zmax:.2f}) for A and B. Jensen-Shannon "
               "divergence of two attention rows: 0 when identical, at most ln 2 = 0.693 nats when they share no key.")
    return layer, head


def divergence_section(aligned: AlignedRuns, names: tuple[str, str], focused: tuple[int, int]) -> None:
    st.subheader("Every head: how far B is from A")
    if aligned.a.shape != aligned.b.shape:
        st.info(f"A has {aligned.a.shape[0]} layers × {aligned.a.shape[1]} heads and B {aligned.b.shape[0]} × "
                f"{aligned.b.shape[1]}: a head-by-head matrix needs the same shape. Head matching below pairs "
                "each head of A with B's closest one.")
        return
    divergence = head_divergence(aligned.a, aligned.b)
    fig = divergence_heatmap(divergence, focused, "JS divergence of A's and B's same head (nats): a row per layer, "
                                                  "a column per head; click one to focus it")
    show_figure(fig, file_stem("divergence", *names), key=MATRIX_KEY,
                on_select=focus_on_click(MATRIX_KEY, LAYER_KEY, HEAD_KEY), selection_mode="points")
    if not lecture_mode():
        st.caption("Jensen-Shannon divergence between A's and B's attention row of each query, averaged over "
                   "queries: 0 for identical heads, at most ln 2 = 0.693 nats for rows with no key in common.")


def matching_section(aligned: AlignedRuns, names: tuple[str, str], matching: HeadMatching) -> None:
    st.subheader("Head matching: B's closest head for each head of A")
    fig = matching_heatmap(matching.divergences, matching.best_layer, matching.best_head,
                           "JS divergence of every head of A (rows) with every head of B (columns)")
    show_figure(fig, file_stem("matching", *names))
    same = head_divergence(aligned.a, aligned.b) if aligned.a.shape == aligned.b.shape else None
    st.dataframe(matching_table(matching.best_layer, matching.best_head, matching.best_divergence, same),
                 hide_index=True, height=300)
    n = aligned.a.shape[-1]
    st.caption("A ring marks each row's closest head of B (least JS divergence, averaged over queries). Several "
               "heads of A may share one closest head."
               + (f" On this {n}-position text, matching averages over {MATCH_QUERIES} evenly spaced queries."
                  if n > MATCH_QUERIES else ""))


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e7 else f"{size / 1e6:.2g} MB"


def compression_section(spec: str, change: Change, text: str, names: tuple[str, str]) -> None:
    """What compressing A did: how B was made, its zeros, size and speed, and its predictions beside A's."""
    _, method, amount = change
    how = (f"the smallest-|w| {amount:.0%} of every linear layer's weight set to 0 (torch.nn.utils.prune."
           "l1_unstructured, made permanent)" if method == L1 else f"int8 quantization: {INT8_METHOD}")
    with st.spinner("Measuring both models…"):
        (bytes_a, zeros_a), (bytes_b, zeros_b) = cached_size(spec, None), cached_size(spec, change)
        seconds_a, seconds_b = cached_forward_seconds(spec, None, text), cached_forward_seconds(spec, change, text)
    st.caption(f"B is a copy of A ({spec}) with {how}. The copy is another model in memory ({_megabytes(bytes_b)}) "
               f"beside the original, while the page keeps it (at most {COMPRESSED_KEPT} compressed copies).")
    columns = st.columns(3)
    columns[0].metric("Parameters that are 0: A → B", f"{zeros_a:.1%} → {zeros_b:.1%}",
                      help="of every parameter value, an int8 weight's as dequantized; embeddings, layer norms and "
                           "biases aren't pruned (a language-model head tied to the embedding is)")
    columns[1].metric("Size in memory: A → B", f"{_megabytes(bytes_a)} → {_megabytes(bytes_b)}",
                      f"{bytes_b / bytes_a - 1:+.0%}" if bytes_b != bytes_a else None, delta_color="inverse",
                      help="parameters and buffers as stored: an int8 weight with its scales; a pruned weight "
                           "keeps its zeros (dense float32)")
    columns[2].metric("Forward pass on this text: A → B", f"{seconds_a * 1e3:.0f} ms → {seconds_b * 1e3:.0f} ms",
                      f"{seconds_b / seconds_a - 1:+.0%}", delta_color="inverse",
                      help="median of 5 passes on this machine now, after a warm-up pass; other work on the "
                           "machine moves it")
    outcome_section(spec, None, change, text, names)


def two_models_view(checkpoints: list[Checkpoint]) -> None:
    spec_a, spec_b, change_b = models_ui(checkpoints)
    text, text_b = current_texts()
    if spec_b is None:
        st.info("Pick or type model B: a checkpoint of the series, a preset, or a model folder.")
        return
    if not text.strip():
        st.info("Type a text in the sidebar to compare the two models on it.")
        return
    pair = load_pair(spec_a, spec_b, text, text_b, change_b)
    if pair is None:
        return
    loaded_a, loaded_b, aligned = pair
    seq2seq = "encoder-decoder" in (loaded_a.kind, loaded_b.kind)
    st.caption(f"{describe('A', loaded_a)}. {describe('B', loaded_b)}."
               + (" Encoder-decoders are compared on their encoder's self-attention." if seq2seq else ""))
    if aligned.notice:
        st.info(aligned.notice)
    names = (short_name(spec_a), short_name(spec_b) + loaded_b.spec.removeprefix(spec_b))  # " · L1-pruned 20%"
    if change_b is not None:
        st.subheader("What compression did")
        compression_section(spec_a, change_b, text, ("A", "B"))
    with st.spinner("Matching heads…"):
        matching = cached_matching(spec_a, spec_b, text, text_b, change_b)
    st.subheader("One head, side by side")
    focused = side_by_side_section(aligned, names,
                                   (loaded_a.kind == "decoder", loaded_b.kind == "decoder"), matching)
    divergence_section(aligned, names, focused)
    matching_section(aligned, names, matching)


def series_view(folder: str, checkpoints: list[Checkpoint]) -> None:
    text, text_b = current_texts()
    if not checkpoints:
        return
    if not text.strip():
        st.info("Type a text in the sidebar to follow the series on it.")
        return
    try:
        with st.spinner(f"Running {len(checkpoints)} checkpoints…"):
            series, left_out, notice = cached_series(folder, _signature(checkpoints), text, text_b)
    except (SeriesError, RunError) as error:
        st.error(str(error))
        return
    if notice:
        st.info(notice)
    if left_out:
        st.warning("Left out of the series on this text: " + " ".join(left_out))
    metric = metric_ui("Head statistic", series.available(), METRIC_KEY)
    label = METRIC_LABELS[metric.key]
    baseline = series.uniform_entropy if metric.key == HeadMetric.ENTROPY else None
    name = short_name(folder)
    st.subheader(f"Every head's {label} across training")
    show_figure(series_panels(series.values[metric.key], series.steps, label, metric.unit,
                              f"{label.capitalize()} ({metric.unit}) of each head over training steps: a panel "
                              "per layer, a line per head", baseline), file_stem("series", name, metric.key))
    st.caption(f"{label}: {metric.help}." + (f" Dotted: uniform attention ({baseline:.2f} nats)."
                                                   if baseline is not None else "")
               + " A head specialises where its line leaves the pack.")
    st.subheader("How far each checkpoint still is from the final one")
    show_figure(divergence_from_final_figure(series.layer_divergence, series.steps,
                                             "JS divergence from the final checkpoint, per layer (mean over its "
                                             "heads)"),
                file_stem("series-divergence", name))
    st.caption("Each head's attention rows compared with the same head at the last step (Jensen-Shannon "
               "divergence, averaged over queries), then averaged over the layer's heads. 0 at the last step.")


def render() -> None:
    st.title("Compare attention")
    view = st.radio("View", (TWO_MODELS, SERIES), horizontal=True, label_visibility="collapsed", **bound(VIEW_KEY))
    folder, is_demo = series_ui()
    checkpoints = series_members(folder, is_demo)
    if view == SERIES:
        series_view(folder, checkpoints)
    else:
        two_models_view(checkpoints)


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
