"""Heads at work: switch heads off (zero- or mean-ablation) and see on the same text what changes:
predictions, the loss per token, the attention of every later head; rank heads by importance
(Michel et al. 2019) and follow the loss as they are removed."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
import time

import numpy as np
import streamlit as st

from models import ModelLoadError, RunError, attention_stacks
from models.compare.divergence import js_divergence, query_divergence, run_divergence
from models.core import tiles
from models.core.run import first_tokens, full_weights_tokens
from models.core.tiles import MAX_WINDOW
from models.interventions.ablation import Head, ablation_notice, attention_layers
from models.interventions.importance import CORPUS, SEEDS, PruningCurve, curve_runs, head_importance, pruning_curve
from models.interventions.loss import LossError, token_losses
from models.interventions.selection import heads_text, parse_heads, ranked_heads, toggled
from pages._changed import Change, cached_changed_run, heads_off, outcome_section
from pages._shared import (
    Slot,
    bound,
    cached_model,
    cached_run,
    current_run,
    current_spec,
    current_texts,
    duration,
    lecture_mode,
    link_value_explained,
    progress_bar,
    run_app_instead,
    safe_callback,
    show_figure,
    time_left,
)
from pages._widgets import METRIC_LABELS, focus_on_click, focus_ui, metric_ui, stack_ui
from pages.heads import SELF_STACKS, cached_grid, lazy_section, statistics_of
from viz.compare import query_divergence_bars, shared_zmax
from viz.heads_at_work import change_heatmap, divergence_figure, mark_off, pruning_curve_figure, switch_off_overview
from viz.heatmap import attention_heatmap
from viz.labels import markdown_literal
from viz.stats import stats_heatmap
from viz.theme import file_stem

# keys of their own: a link to this page never moves another page's controls
STACK_KEY, HOW_KEY, LAYER_KEY, HEAD_KEY = "hw_stack", "ablation", "hw_layer", "hw_head"
OFF_KEYS = {"self-attention": "off", "encoder": "off", "decoder": "off_decoder", "cross": "off_cross"}
PICK_METRIC_KEY, PICK_END_KEY, PICK_K_KEY = "pick_metric", "pick_end", "pick_k"
IMPORTANCE_KEY, CURVE_KEY, SOURCE_KEY = "importance", "curve", "importance_on"
GRID_KEY, MATRIX_KEY, IMPORTANCE_MAP_KEY = "hw_grid", "hw_divergence", "hw_importance_map"
PICK_KEY = "pick_open"  # the folded picker of a long text
EXPLAINED_KEY = "_heads_off_explained"  # {box key: its text, already said to hold what isn't a head}
ZERO, MEAN = "zero", "mean"
HIGHEST, LOWEST = "highest", "lowest"
ON_TEXT, ON_CORPUS = "this text", "built-in corpus"
STACK_NAMES = {"self-attention": "Heads", "encoder": "Encoder heads", "decoder": "Decoder heads",
               "cross": "Cross-attention heads"}


# --- cached computations, keyed by (model, text, ...); the heads off as a change (pages._changed) ---

@st.cache_resource(max_entries=16, show_spinner=False)
def _divergence_slot(spec: str, text: str, text_b: str, change: Change) -> Slot:
    return Slot()


def cached_divergence(spec: str, text: str, text_b: str, change: Change) -> dict[str, np.ndarray]:
    """{stack: [layers, heads]} heads off vs intact; a long run's in row tiles, with a progress bar."""
    intact, changed = cached_run(spec, text, text_b), cached_changed_run(spec, change, text, text_b)
    with progress_bar("Comparing every head's attention: layer") as progress:
        return _divergence_slot(spec, text, text_b, change).get(lambda: run_divergence(intact, changed, progress))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_query_divergence(spec: str, text: str, text_b: str, change: Change, stack_name: str, layer: int,
                            head: int) -> np.ndarray:
    """[q]: one head's divergence per query, heads off vs intact, recomputed in row tiles (a long run)."""
    intact, changed = (attention_stacks(run)[stack_name].weights
                       for run in (cached_run(spec, text, text_b), cached_changed_run(spec, change, text, text_b)))
    return query_divergence(intact, changed, layer, head)


def _first_tokens_model(spec: str):
    """The model as head importance and the pruning curve read a text: its first full_weights_tokens
    tokens (a backward pass keeps every weight of every head; the curve's passes are many)."""
    loaded = cached_model(spec)
    return first_tokens(loaded, full_weights_tokens(loaded))


@st.cache_data(max_entries=8, show_spinner=False)
def cached_importance(spec: str, texts: tuple[str, ...], stack: str) -> np.ndarray:
    return head_importance(_first_tokens_model(spec), texts, stack)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_pass_seconds(spec: str, texts: tuple[str, ...]) -> float:
    """Seconds of one loss pass over the texts: what each step of the pruning curve costs."""
    start = time.perf_counter()
    for text in texts:
        token_losses(_first_tokens_model(spec), text)
    return time.perf_counter() - start


@st.cache_data(max_entries=4, show_spinner=False)
def cached_curve(spec: str, texts: tuple[str, ...], stack: str, _progress) -> PruningCurve:
    """`_progress(done, total)` is called while computing (not on a cache hit; not part of the key)."""
    return pruning_curve(_first_tokens_model(spec), cached_importance(spec, texts, stack), texts, stack, progress=_progress)


# --- widgets: each returns what it read ---

def _shape(counts: tuple[int, ...]) -> str:
    return f"{len(counts)} layers × {max(counts)} heads"


def heads_off_input(container, stack: str, counts: tuple[int, ...], label: str) -> list[Head]:
    """The heads switched off in `stack`, from a text box bound to the URL ("off=17.3,18.6"). What isn't a
    head of the model (a link's typo, heads of a larger model picked before) is left out, saying so."""
    key = OFF_KEYS[stack]
    from_link = key not in st.session_state
    raw = (st.query_params.get(key) if from_link else st.session_state[key]) or ""
    parsed = parse_heads(raw, counts)
    rejected = parsed.rejected  # as typed: the message quotes the user's own order
    explained = st.session_state.setdefault(EXPLAINED_KEY, {})
    if rejected and explained.get(key) != raw:  # a link's value shows in the box until the next run: said once
        explained[key] = raw
        told = "The link switches off" if from_link else "Left out:"
        st.warning(f"{told} '{markdown_literal(', '.join(rejected))}': not {'a head' if len(rejected) == 1 else 'heads'} "
                   f"of this model's {stack} ({_shape(counts)}, written layer.head from 0.0). Switched off: "
                   f"{heads_text(parsed.heads) or 'none'}.")
        link_value_explained(key)
    if raw != heads_text(parsed.heads):
        st.session_state[key] = heads_text(parsed.heads)  # the canonical form, before the box is drawn
    container.text_input(label, placeholder="none; e.g. 0.3,2.1 (layer.head)", **bound(key),
                         help="heads written layer.head, separated by commas; click thumbnails below to switch "
                              "heads off or on, or pick them by a statistic")
    return parsed.heads


def heads_off_ui(counts: dict[str, tuple[int, ...]]) -> tuple[dict[str, list[Head]], str]:
    """({stack: heads switched off}, how: zero or mean)."""
    columns = st.columns([2] * len(counts) + [1], vertical_alignment="bottom")
    off = {stack: heads_off_input(column, stack, stack_counts, f"{STACK_NAMES[stack]} switched off")
           for column, (stack, stack_counts) in zip(columns, counts.items())}
    how = columns[-1].segmented_control(
        "Switch off by", (ZERO, MEAN), default=ZERO, required=True, **bound(HOW_KEY),
        help="zero: the head's output (its part of the input to the output projection) is set to 0; mean: it is "
             "replaced by its mean over the text's positions")
    return off, how or ZERO


def _set_off(stack: str, heads: list[Head]) -> None:
    st.session_state[OFF_KEYS[stack]] = heads_text(heads)


def _toggle_clicked(chart_key: str, stack: str, counts: tuple[int, ...]) -> None:
    points = st.session_state[chart_key]["selection"]["points"]
    if points:
        layer, head = points[0]["customdata"][:2]
        current = parse_heads(st.session_state.get(OFF_KEYS[stack]) or "", counts).heads
        _set_off(stack, toggled(current, (int(layer), int(head))))


def toggle_on_click(chart_key: str, stack: str, counts: tuple[int, ...]):
    """on_select for a heads chart whose points carry (layer, head): a click switches that head off, or on."""
    return safe_callback(_toggle_clicked, chart_key, stack, counts)


def _clicks_key(base: str, stack: str, off: list[Head]) -> str:
    """A chart key that changes with the heads off: a fresh chart holds no selection, so a second click on the
    same head is a new selection (a click on a selected point would only clear it)."""
    return f"{base}-{stack}-{heads_text(off)}"


def pick_ui(key: tuple[str, str, str], stack: str, off: list[Head]) -> None:
    """Pick heads by a statistic of the intact model on this text: the k with the highest (lowest) value."""
    if stack not in SELF_STACKS:
        st.caption("Heads are picked by a statistic of self-attention: pick the encoder or decoder stack for that.")
        return
    statistics = statistics_of((*key, None), stack)  # no induction probe here; a long run's in tiles, with progress
    values = statistics.values
    columns = st.columns([2, 1.2, 1, 1.3, 1.1], vertical_alignment="bottom")
    with columns[0]:
        metric = metric_ui("Pick heads by", statistics.available(), PICK_METRIC_KEY)
    end = columns[1].segmented_control("Which", (HIGHEST, LOWEST), default=HIGHEST, required=True,
                                       **bound(PICK_END_KEY)) or HIGHEST
    total = int(np.prod(values[metric.key].shape))
    k = columns[2].number_input("How many", 1, total, min(5, total), **bound(PICK_K_KEY))
    picked = ranked_heads(values[metric.key], int(k), end == HIGHEST)
    columns[3].button("Switch off these", on_click=safe_callback(_set_off, stack, picked), width="stretch",
                      icon=":material/power_settings_new:", help="switch off exactly these heads of this stack")
    columns[4].button("Add them", on_click=safe_callback(_set_off, stack, off + picked), width="stretch",
                      help="switch these off as well as those already off")
    label = METRIC_LABELS[metric.key]
    st.caption(f"The {len(picked)} head{'s' if len(picked) != 1 else ''} with the {end} {label} ({metric.unit}) on "
               "this text: " + ", ".join(f"{layer}.{head} ({values[metric.key][layer, head]:.2f})"
                                         for layer, head in picked) + ".")


def source_ui() -> tuple[str, tuple[str, ...]]:
    """(name, texts) that head importance and the pruning curve are computed on."""
    source = st.segmented_control("Importance and pruning curve on", (ON_TEXT, ON_CORPUS), default=ON_TEXT,
                                  required=True, **bound(SOURCE_KEY),
                                  help=f"the sidebar's text, or {len(CORPUS)} plain sentences built in (the last "
                                       "repeats a phrase, so induction heads have something to copy)") or ON_TEXT
    return source, (current_texts()[0],) if source == ON_TEXT else CORPUS


def _focus_state(layers: int, heads: int) -> tuple[int, int]:
    """The focused head before its sliders are drawn (further down), as they will show it: the session's
    value clamped into range, or the link's if it is in range (else 0)."""
    def read(key: str, count: int) -> int:
        if key in st.session_state:
            return min(max(st.session_state[key], 0), count - 1)
        try:
            value = int(st.query_params.get(key, 0))
        except ValueError:
            return 0
        return value if 0 <= value < count else 0
    return read(LAYER_KEY, layers), read(HEAD_KEY, heads)


# --- page sections ---

def gated_run():
    """The sidebar's model and run, or None after saying why: also when its heads can't be switched off."""
    try:
        with st.spinner(f"Loading {current_spec()}…"):
            attention_layers(cached_model(current_spec()))  # one probe pass per model, kept
    except ModelLoadError:
        pass  # current_run says why
    except RunError as refusal:  # AblationError: attention outside the explorer's function (Longformer)
        st.error(str(refusal))
        return None
    return current_run()


def long_text_notice(n: int, limit: int) -> str:
    """What the page does with a text too long to keep every head's n x n weights."""
    return (f"A long text: {n:,} tokens, more than the {limit:,} whose every weight a run keeps. The model runs on "
            "the whole text in row tiles, holding no head's n × n weights at once, so each computation below takes "
            "longer and shows a progress bar (changing the text stops it): the grid shows each head pooled; "
            "predictions, the loss per token and each head's divergence read every token, with and without the "
            f"heads off; the focused head's heatmaps show the first {MAX_WINDOW} queries × {MAX_WINDOW} keys; head "
            f"importance and the pruning curve read the first {limit:,} tokens (a backward pass keeps every weight); "
            "head statistics to pick heads by are computed only when you open that section.")


def status_section(loaded, off: dict[str, list[Head]], how: str) -> None:
    if not any(off.values()):
        st.info("No head is switched off: every output below is the intact model's, bit for bit (the gate passes "
                "each head through unchanged). Click thumbnails in the grid, type heads above, or pick them by a "
                "statistic.")
        return
    for stack, heads in off.items():
        notice = ablation_notice(loaded, heads, how, stack) if heads else None
        if notice:
            st.warning(notice)


def grid_section(key: tuple[str, str, str], stack, off: list[Head], counts: tuple[int, ...]) -> None:
    grid = cached_grid(*key, None, stack.name, False, "all")  # a long run's from its overview
    focused = _focus_state(*stack.weights.shape[:2])
    fig = switch_off_overview(grid, off, focused, f"All heads ({stack.name}), intact model: click one to switch it "
                                                  "off or on")
    chart = _clicks_key(GRID_KEY, stack.name, off)
    show_figure(fig, file_stem("heads-off", key[0], stack.name), key=chart,
                on_select=toggle_on_click(chart, stack.name, counts), selection_mode="points")
    if not lecture_mode():
        st.caption("Each thumbnail is a head's token × token attention in the intact model; crossed out: switched "
                   "off. The outline marks the head shown side by side below.")


def divergence_section(key: tuple[str, str, str], stack, change: Change, off: list[Head],
                       names: tuple[str, str]) -> None:
    divergences = cached_divergence(*key, change)
    layers, heads = stack.weights.shape[:2]
    fig = divergence_figure(divergences[stack.name], _focus_state(layers, heads), off,
                            f"JS divergence of each head's attention ({stack.name}) from the intact model's (nats): "
                            "click one to see it side by side")
    show_figure(fig, file_stem("divergence-heads-off", key[0], stack.name), key=MATRIX_KEY,
                on_select=focus_on_click(MATRIX_KEY, LAYER_KEY, HEAD_KEY), selection_mode="points")
    if not lecture_mode():
        others = [f"{name} {values.mean():.4f}" for name, values in divergences.items() if name != stack.name]
        st.caption("Jensen-Shannon divergence of each head's attention rows, intact vs heads off, averaged over "
                   "queries (0 = unchanged, at most ln 2 = 0.693). A switched-off head (crossed) still computes its "
                   "attention: only its output is removed, so its own rows change only through earlier layers, and "
                   "every head before the first one off keeps its attention exactly."
                   + (f" Mean divergence of the other stacks: {', '.join(others)} (pick one above to see it)."
                      if others else ""))
    layer, head = focus_ui(layers, heads, LAYER_KEY, HEAD_KEY)
    head_section(key, stack, change, (layer, head), names)


def head_section(key: tuple[str, str, str], stack, change: Change, focused: tuple[int, int],
                 names: tuple[str, str]) -> None:
    """The focused head intact and with heads off, on one colour range, their difference and where they differ."""
    layer, head = focused
    changed_stack = attention_stacks(cached_changed_run(key[0], change, *key[1:]))[stack.name]
    if stack.attentions is None:  # a long run: the figures on a window, the divergence per query over every query
        shown = slice(0, min(len(stack.query_labels), MAX_WINDOW)), slice(0, min(len(stack.key_labels), MAX_WINDOW))
        intact, changed = (tiles.window(s.weights, layer, head, *shown) for s in (stack, changed_stack))
        queries, keys = stack.query_labels[shown[0]], stack.key_labels[shown[1]]
        rows = cached_query_divergence(*key, change, stack.name, layer, head)  # [q]
        st.info(f"The heatmaps show the first {shown[0].stop} queries × {shown[1].stop} keys of this text's "
                f"{len(stack.query_labels):,} tokens (a figure shows at most {MAX_WINDOW} × {MAX_WINDOW} weights); "
                "the divergences read every query, the heads recomputed in row tiles.")
    else:
        intact, changed = stack.attentions[layer, head], changed_stack.attentions[layer, head]
        queries, keys = stack.query_labels, stack.key_labels
        rows = js_divergence(intact, changed)  # [q]
    zmax = shared_zmax(intact, changed)
    top, bottom = st.columns(2), st.columns(2)
    for column, (name, matrix) in zip(top, ((names[0], intact), (names[1], changed))):
        with column:
            show_figure(attention_heatmap(matrix, queries, keys, f"{name.capitalize()}: layer {layer}, head {head}",
                                          causal=stack.causal, zmax=zmax),
                        file_stem("head", key[0], stack.name, name, f"L{layer}", f"H{head}"))
    with bottom[0]:
        show_figure(change_heatmap(changed - intact, queries, keys, "Heads off − intact: red where the head now "
                                   "attends more", causal=stack.causal),
                    file_stem("head-difference", key[0], stack.name, f"L{layer}", f"H{head}"))
    with bottom[1]:
        show_figure(query_divergence_bars(rows, stack.query_labels, f"Where it changed: JS divergence per query, mean "
                                                         f"{rows.mean():.4f}"),
                    file_stem("head-query-divergence", key[0], stack.name, f"L{layer}", f"H{head}"))


def importance_section(spec: str, source: tuple[str, tuple[str, ...]], stack: str, off: list[Head],
                       counts: tuple[int, ...], focused: tuple[int, int]) -> None:
    box = lazy_section("Head importance (Michel et al. 2019): how much the loss depends on each head",
                       IMPORTANCE_KEY)
    if not box.open:
        return
    name, texts = source
    with box:
        try:
            with st.spinner(f"Computing head importance on {name} (a backward pass per text)…"):
                importance = cached_importance(spec, texts, stack)
        except LossError as none:
            st.info(f"No importance: {none}")
            return
        fig = mark_off(stats_heatmap(importance, "importance", "l2-normalised", focused,
                                     f"Importance of each head ({stack}) on {name}: click one to switch it off "
                                     "or on"), off)
        chart = _clicks_key(IMPORTANCE_MAP_KEY, stack, off)
        show_figure(fig, file_stem("importance", spec, stack), key=chart,
                    on_select=toggle_on_click(chart, stack, counts), selection_mode="points")
        least = ranked_heads(importance, 5, highest=False)
        st.button("Switch off the 5 least important", on_click=safe_callback(_set_off, stack, least),
                  help=", ".join(f"{layer}.{head}" for layer, head in least))
        if not lecture_mode():
            st.caption("I_h = mean over the texts of |∂L/∂ξ_h|, the gradient of the loss with respect to a gate ξ_h = 1 "
                       "on head h's output, each layer divided by its l2 norm (Michel et al. 2019). A small value: "
                       "switching the head off barely moves the loss, to first order.")


def changed_name(off: dict[str, list[Head]], how: str) -> str:
    """What the changed model is called in titles and legends: "no head off", "3 heads off (mean)"."""
    count = sum(len(heads) for heads in off.values())
    if not count:
        return "no head off"
    return f"{count} head{'s' if count > 1 else ''} off" + (" (mean)" if how == MEAN else "")


def curve_section(spec: str, source: tuple[str, tuple[str, ...]], stack: str, counts: tuple[int, ...]) -> None:
    name, texts = source
    runs = curve_runs(sum(counts))
    try:
        cost = f"{runs} runs of the model over {name}, about {duration(runs * cached_pass_seconds(spec, texts))} here"
    except LossError:
        cost = "needs a language-model head"
    box = lazy_section(f"Pruning curve: the loss as heads are removed ({cost})", CURVE_KEY)
    if not box.open:
        return
    with box:
        bar = st.progress(0.0, text="Ranking heads by importance…")
        start = time.perf_counter()

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Switching heads off: run {done} of {total}, {time_left(start, done, total)}")

        try:
            curve = cached_curve(spec, texts, stack, progress)
        except LossError as none:
            st.info(f"No pruning curve: {none}")
            return
        finally:
            bar.empty()
        show_figure(pruning_curve_figure(curve.shares, curve.loss, curve.agreement, curve.random_loss,
                                         curve.random_agreement,
                                         f"Switching off {stack} heads on {name}: least important first vs random "
                                         "order"),
                    file_stem("pruning-curve", spec, stack))
        if not lecture_mode():
            st.caption(f"Heads switched off (zero-ablation) in order of increasing importance (orange) or in "
                       f"{len(SEEDS)} random orders (grey), at {len(curve.removed)} shares from none to all "
                       f"{curve.total}. Agreement: the share of scored tokens whose most probable prediction is still "
                       "the intact model's.")


def render() -> None:
    st.title("Heads at work")
    result = gated_run()
    if result is None:
        return
    loaded, run = result
    text, text_b = current_texts()
    key = (current_spec(), text, text_b)
    counts = attention_layers(loaded).heads  # stack -> heads of each layer
    stacks = attention_stacks(run)
    stack = stacks[stack_ui(list(stacks), STACK_KEY)]
    st.caption(f"{loaded.spec}: {loaded.kind} ({loaded.config.model_type}), {_shape(counts[stack.name])} "
               f"({stack.name}). Switch heads off and see, on the same text, what the model does without them.")
    long = stack.attentions is None
    if long:
        st.info(long_text_notice(len(stack.query_labels), full_weights_tokens(loaded)))
    off, how = heads_off_ui(counts)
    if long:  # head statistics of a long text take a pass over every head in tiles: only when asked for
        box = lazy_section("Pick heads by a statistic (computed in row tiles over the whole text)", PICK_KEY)
        if box.open:
            with box:
                pick_ui(key, stack.name, off[stack.name])
    else:
        pick_ui(key, stack.name, off[stack.name])
    ablation = tuple((name, tuple(heads)) for name, heads in off.items() if heads)
    change = heads_off(ablation, how) if ablation else None  # none off: the intact model's outputs, computed once
    status_section(loaded, off, how)
    grid_section(key, stack, off[stack.name], counts[stack.name])
    names = ("intact", changed_name(off, how))
    st.subheader("What changes on the text")
    if text_b.strip() and not lecture_mode():
        st.caption("Predictions and the loss read the first text only; the attention below reads both.")
    outcome_section(key[0], None, change, text, names)
    st.subheader("The attention of every head")
    divergence_section(key, stack, change, off[stack.name], names)
    source = source_ui()
    focused = _focus_state(*stack.weights.shape[:2])
    importance_section(key[0], source, stack.name, off[stack.name], counts[stack.name], focused)
    curve_section(key[0], source, stack.name, counts[stack.name])


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
