"""Sparse attention patterns: the masks, their cost, how information still flows, and the
patterns applied to the live model."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
import numpy as np
import streamlit as st

from models.analysis.numerics import pooled
from models.core.native_sparse import is_native_sparse
from models.core.run import SHORT_TOKENS, RunError, first_tokens, first_tokens_notice
from models.core.tiles import MAX_WINDOW
from models.sparse.cost import (
    ROWWISE_MAX_N,
    CostPoint,
    Growth,
    active_cells,
    counted_in_closed_form,
    growth,
    measure_cost,
)
from models.sparse.enforce import EnforcedRun, coverage, enforced_run, tiled_coverage
from models.sparse.patterns import (
    DESCRIPTIONS,
    KINDS,
    SPLIT,
    AnyPattern,
    HeadPatterns,
    Pattern,
    PatternError,
    head_patterns,
    parse_positions,
)
from models.sparse.reachability import Reachability, path, reachability
from pages._shared import (
    bound,
    cached_model,
    cached_run,
    current_run,
    current_spec,
    current_texts,
    int_control_state,
    run_app_instead,
    show_figure,
)
from pages._widgets import focus_ui, special_tokens_ui
from viz.labels import markdown_literal
from viz.sparse import (
    cosine_figure,
    cost_figure,
    cost_frame,
    cost_summary,
    coverage_figure,
    distance_figure,
    growth_figure,
    mark_path,
    mask_figure,
    mask_side,
    overlay_figure,
    path_figure,
    predictions_frame,
    reach_figure,
)

VIEWS = ("Pattern", "Growth", "Reachability", "Live model", "Cost")
# the selectboxes' labels are what the URL holds: short plain words
KIND_NAMES = {"full": "full", "causal": "causal", "sliding_window": "sliding window", "dilated": "dilated window",
              "strided": "strided", "fixed": "fixed", "longformer": "Longformer", "bigbird": "BigBird",
              "blockwise": "blockwise"}
PARTS = ("union", "A1", "A2", SPLIT)
ARRANGEMENTS = ("none", "union", "intersection", "alternate")
SPECIAL_KEY = "special"  # as on the Heads page: one switch for special tokens among predictions
MAX_N, MAX_REACH_N = 4096, 512  # reachability is all-pairs shortest paths: kept to the live model's size


# ---- cached computations, keyed by the patterns' values: moving a slider elsewhere recomputes nothing ----

@st.cache_data(max_entries=24, show_spinner=False)
def cached_mask_figure(pattern: AnyPattern, n: int, title: str, height: int):
    return mask_figure(pooled(pattern.build(n), mask_side(n)), n, title, height)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_cells(pattern: AnyPattern, n: int) -> int:
    return active_cells(pattern, n)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_growth(pattern: AnyPattern, scale_stride: bool) -> Growth:
    return growth(pattern, scale_stride=scale_stride)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_reachability(pattern: AnyPattern, n: int) -> Reachability:
    return reachability(pattern.build(n))


@st.cache_data(max_entries=4, show_spinner=False)
def cached_cost(pattern: AnyPattern) -> list[CostPoint]:
    return measure_cost(pattern)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_coverage(spec: str, text: str, text_b: str, patterns: HeadPatterns) -> np.ndarray:
    run = cached_run(spec, text, text_b)
    if run.attentions is None:  # a long run: its heads recomputed in row tiles
        return tiled_coverage(run.weights(), patterns)
    return coverage(run.attentions, patterns.masks(run.n, run.num_heads))


@st.cache_data(max_entries=8, show_spinner=False)
def cached_enforced(spec: str, text: str, text_b: str, patterns: HeadPatterns, n: int, heads: int,
                    include_special: bool) -> EnforcedRun:
    """n: the tokens the enforced run reads (the first n of the text when it is shorter than the run)."""
    return enforced_run(first_tokens(cached_model(spec), n), text, text_b or None, patterns.masks(n, heads),
                        include_special=include_special)


# ---- controls: each returns what it read; every value lives in the URL ----

def view_ui() -> str:
    return st.radio("View", VIEWS, horizontal=True, label_visibility="collapsed", **bound("view"))


def params_ui(kind: str, suffix: str, allow_split: bool) -> dict:
    """The parameters of `kind` as controls in a row; keys end with `suffix` (second pattern: '2')."""
    columns = iter(st.columns(4))

    def number(name, label, lo, hi, default, **kwargs):
        return int(next(columns).number_input(label, lo, hi, default, **kwargs, **bound(name + suffix)))

    params = {}
    if kind in ("sliding_window", "dilated", "longformer"):
        params["w"] = number("w", "w: keys on each side", 0, MAX_N, 2)
    if kind == "dilated":
        params["d"] = number("d", "d: dilation (gap)", 1, MAX_N, 2)
    if kind in ("strided", "fixed"):
        params["l"] = number("l", "l: stride" if kind == "strided" else "l: block length", 1, MAX_N, 8)
    if kind == "fixed":
        params["c"] = number("c", "c: summary cells per block", 1, MAX_N, 2)
    if kind in ("strided", "fixed"):
        parts = [p for p in PARTS if allow_split or p != SPLIT]
        params["part"] = next(columns).selectbox(
            "Component", parts, help="union: A1 ∪ A2 on every head; split: A1 on even heads, A2 on odd heads",
            **bound("part" + suffix))
        params["causal"] = next(columns).checkbox("causal", True, help="as in the paper: keys j ≤ i only; "
                                                  "untick for a bidirectional version", **bound("causal" + suffix))
    if kind in ("sliding_window", "dilated"):
        params["causal"] = next(columns).checkbox("causal", False, help="keys j ≤ i only",
                                                  **bound("window_causal" + suffix))
    if kind == "longformer":
        text = next(columns).text_input("Global tokens (positions)", "0", help="e.g. 0 for [CLS], or 0, 7",
                                        **bound("global" + suffix))
        params["global_tokens"] = parse_positions(text)
    if kind in ("bigbird", "blockwise"):
        params["b"] = number("b", "b: block size", 1, MAX_N, 8)
    if kind == "bigbird":
        params["window_blocks"] = number("window_blocks", "window blocks (odd)", 1, 63, 3, step=2)
        params["random_blocks"] = number("random_blocks", "r: random blocks per row", 0, 256, 2)
        params["seed"] = number("seed", "seed", 0, 2**31 - 1, 0)
    return params


def pattern_ui(suffix: str = "", allow_split: bool = True, default: str = "strided") -> Pattern:
    kind = st.selectbox("Pattern" if not suffix else "Second pattern", KINDS, index=KINDS.index(default),
                        format_func=KIND_NAMES.get, **bound("pattern" + suffix))
    return Pattern(kind, params_ui(kind, suffix, allow_split))


def heads_ui() -> HeadPatterns:
    """The pattern each head uses: one pattern, or two combined cell by cell or head by head."""
    left, right = st.columns([2, 1])
    with left:
        first = pattern_ui()
    how = right.selectbox("Combine with a second pattern", ARRANGEMENTS, **bound("combine"),
                          help="union / intersection: cell by cell on every head; "
                               "alternate: the second pattern on every other head")
    second = pattern_ui("2", allow_split=False, default="longformer") if how != "none" else None
    return head_patterns(first, how, second)


def size_ui(hi: int = MAX_N) -> int:
    return int(st.columns(4)[0].number_input("n: positions", 2, hi, 64, help=f"up to {hi}", **bound("n")))


def path_ui(n: int) -> tuple[int, int]:
    left, right = st.columns(2)
    query = left.number_input("Query position i (receives)", 0, n - 1, n - 1,
                              **int_control_state("query", 0, n - 1, "query position", "these n positions"))
    key = right.number_input("Key position j (is received)", 0, n - 1, 0,
                             **int_control_state("key", 0, n - 1, "key position", "these n positions"))
    return int(query), int(key)


# ---- views ----

def pattern_view(patterns: HeadPatterns) -> None:
    n = size_ui()
    union = patterns.union()
    shown = [(patterns.group(k), p) for k, p in enumerate(patterns.patterns)]
    if len(shown) > 1:
        shown.append(("one layer (union of the heads)", union))
    for column, (heads, pattern) in zip(st.columns(len(shown)), shown):
        title = f"{heads.capitalize()}, n = {n}" if len(shown) > 1 else f"{pattern.label}, n = {n}"
        with column:
            show_figure(cached_mask_figure(pattern, n, title, 620 if len(shown) == 1 else 440),
                        f"sparse_mask_{pattern.label}_{n}")
            if len(shown) > 1:
                st.caption(pattern.label)
    cells = cached_cells(union, n)
    left, middle, right = st.columns(3)
    left.metric("Active cells (query-key pairs)", f"{cells:,}")
    middle.metric("Density", f"{cells / n**2:.2%}")
    right.metric("Full attention", f"{n * n:,}")
    if len(shown) > 1:
        st.caption("With several patterns over the heads, one layer connects the union of the heads' cells; "
                   "the counts are those of the union.")
    for kind in patterns.kinds:
        st.caption(f"**{KIND_NAMES[kind]}**: {DESCRIPTIONS[kind]}")


def growth_view(patterns: HeadPatterns) -> None:
    union = patterns.union()
    scale = False
    if {"strided", "fixed"} & set(union.kinds):
        scale = st.checkbox("l = √n at each n (the Sparse Transformer's choice)", True, **bound("sqrt_l"))
    result = cached_growth(union, scale)
    show_figure(growth_figure(result, union.label), "sparse_growth")
    st.caption(f"Fitted exponent {result.exponent:.2f}: about 1 for windows and blocks (linear in n), about 1.5 for "
               "strided or fixed with l ≈ √n, 2 for full or causal attention. Counts come from closed forms, "
               "never from an n × n matrix.")
    if not counted_in_closed_form(union):
        st.info("Combinations of patterns are counted row by row from the mask, "
                f"so the chart stops at n = {ROWWISE_MAX_N}.")


def reach_view(patterns: HeadPatterns) -> None:
    n = size_ui()
    if n > MAX_REACH_N:
        st.info(f"Reachability compares all pairs of positions: shown for the first {MAX_REACH_N} positions.")
        n = MAX_REACH_N
    union = patterns.union()
    found = cached_reachability(union, n)
    left, middle, right = st.columns(3)
    left.metric("Diameter: layers until every pair connects",
                "never" if found.layers_needed is None else f"{found.layers_needed} layers",
                help="the longest of the shortest paths between a query and a key")
    middle.metric("Pairs connected by one layer", f"{found.connected_after(1):.1%}")
    right.metric("Pairs that never connect", f"{found.unreachable:,}")
    if found.past_only:
        st.caption("The pattern is causal: a query never reaches a later key, so only pairs j ≤ i count.")
    show_figure(reach_figure(found.reach_by_layer, found.past_only), "sparse_reach")
    st.subheader("How does position i reach position j?")
    query, key = path_ui(n)
    route = path(union.build(n), query, key)
    if route is None:
        reason = "a causal pattern never reaches the future" if found.past_only and key > query else \
            "no chain of attention links joins them, however many layers are stacked"
        st.warning(f"Query {query} never receives key {key}: {reason}.")
    else:
        st.markdown(f"**{' → '.join(map(str, route))}**: " + (
            "the same position." if len(route) == 1 else
            f"{len(route) - 1} layer(s); each arrow is a query attending to a key allowed by the pattern."))
        left, right = st.columns(2)
        with left:
            show_figure(path_figure(route, n), "sparse_path")
        with right:
            mask = pooled(union.build(n), mask_side(n))
            show_figure(mark_path(mask_figure(mask, n, f"Cells the path uses on the mask, n = {n}"), route),
                        "sparse_path_mask")
    show_figure(distance_figure(found.distance), "sparse_distances")


def live_view(patterns: HeadPatterns) -> None:
    result = current_run()
    if result is None:
        return
    loaded, run = result
    spec, (text, text_b) = current_spec(), current_texts()
    if is_native_sparse(loaded.config):
        native_view(loaded, run, patterns)
        return
    n = min(run.n, SHORT_TOKENS) if run.attentions is None else run.n  # the enforced run keeps every weight twice
    masks = patterns.masks(n, run.num_heads)  # [heads, n, n]
    st.caption(f"{loaded.spec}: {run.num_layers} layers × {run.num_heads} heads, n = {run.n:,} tokens, special "
               f"tokens included (position 0 is the first token, here “{markdown_literal(run.tokens[0])}”). Pattern: "
               + patterns.label)
    layer, head = focus_ui(run.num_layers, run.num_heads)
    figures, predictions = st.container(), st.container()
    with predictions:  # drawn below the figures, read first: the enforced run's predictions depend on it
        include_special = predictions_header(loaded)
    with figures:
        with st.spinner("Measuring every head's attention inside the pattern…"):
            show_figure(coverage_figure(cached_coverage(spec, text, text_b, patterns), (layer, head)),
                        f"sparse_coverage_{spec}")
        try:
            with st.spinner("Re-running the model with the pattern enforced…"):
                enforced = cached_enforced(spec, text, text_b, patterns, n, run.num_heads, include_special)
        except RunError as error:  # a model that takes no extra mask: a message, not a failed view
            st.error(str(error))
            return
        if n < run.n:
            st.info(first_tokens_notice("The enforced run (dense and sparse, every head)", n, run.n)
                    + " So do the heads, the cosine and the predictions below it; the coverage above reads every "
                      "token, each head recomputed in row tiles.")
        dense, labels = (run.attentions, run.labels) if n == run.n else (enforced.dense_attentions, run.labels[:n])
        left, right = st.columns(2)
        with left:
            show_figure(overlay_figure(dense[layer, head], masks[head], labels,
                                       f"Dense: layer {layer}, head {head}, outside the pattern greyed", run.causal),
                        f"sparse_dense_L{layer}_H{head}")
        with right:
            show_figure(overlay_figure(enforced.attentions[layer, head], masks[head], labels,
                                       f"Enforced: layer {layer}, head {head}", run.causal),
                        f"sparse_enforced_L{layer}_H{head}")
        st.caption("Enforced: the pattern is added to the scores before softmax (−∞ outside), in every "
                   "self-attention call of this size" + (" of the encoder" if loaded.kind == "encoder-decoder" else "")
                   + (", on top of the causal mask" if run.causal else "") + ".")
        if enforced.rows_given_self:
            st.info(f"{enforced.rows_given_self} (head, query) rows had no key in the pattern; they attend to "
                    "themselves (a softmax over no key is undefined).")
        show_figure(cosine_figure(enforced.cosine), f"sparse_cosine_{spec}")
    with predictions:
        predictions_section(loaded, enforced)


def native_view(loaded, run, patterns: HeadPatterns) -> None:
    """A model with its own sparse attention (Longformer, BigBird): its weights drawn n × n, no pattern enforced."""
    family = loaded.config.model_type
    st.info(f"{loaded.spec} ({family}) computes its own sparse attention, so the weights below are the model's own "
            "sparse pattern, drawn as n × n (queries × keys, 0 where it computes nothing). A pattern can't be enforced "
            "on it: its attention never goes through the explorer's attention function. The coverage shows how much "
            "of its attention falls inside the pattern chosen above.")
    spec, (text, text_b) = current_spec(), current_texts()
    layer, head = focus_ui(run.num_layers, run.num_heads)
    show_figure(coverage_figure(cached_coverage(spec, text, text_b, patterns), (layer, head)),
                f"sparse_coverage_{spec}")
    shown = min(run.n, MAX_WINDOW)
    weights = run.attentions[layer, head, :shown, :shown]  # [shown, shown]
    show_figure(overlay_figure(weights, patterns.masks(shown, run.num_heads)[head], run.labels[:shown],
                               f"{family}'s own attention: layer {layer}, head {head}, outside the chosen pattern "
                               "greyed", run.causal),
                f"sparse_native_L{layer}_H{head}")
    computed = float((run.attentions[layer, head] > 0).mean())
    st.caption(f"This head gives weight to {computed:.1%} of the {run.n:,} × {run.n:,} query-key pairs."
               + (f" The figure shows the first {shown} tokens." if shown < run.n else ""))


def predictions_header(loaded) -> bool:
    """The predictions' title and special-token switch; returns the switch (False without predictions)."""
    st.subheader("Next-token predictions, dense vs sparse" if loaded.has_lm_head else
                 "Masked-word predictions, dense vs sparse")
    return special_tokens_ui(SPECIAL_KEY) if loaded.has_mlm_head or loaded.has_lm_head else False


def predictions_section(loaded, enforced: EnforcedRun) -> None:
    if not (loaded.has_mlm_head or loaded.has_lm_head):
        st.info(f"{loaded.spec} has no masked-LM head and no next-token head, so it makes no word predictions "
                "to compare. Load a decoder such as smollm2, or a …ForMaskedLM model (e.g. bert-base-uncased, or a "
                "folder) and put [MASK] in the text.")
    elif not enforced.predictions:
        st.info(f"Put {loaded.tokenizer.mask_token} in the text to see what the model predicts there, dense vs sparse.")
    for found in enforced.predictions:
        where = "After the last token" if loaded.has_lm_head else "At the mask"
        st.markdown(f"{where} (position {found.position}):")
        st.dataframe(predictions_frame(found.dense, found.sparse), hide_index=True)


def cost_view(patterns: HeadPatterns) -> None:
    union = patterns.union()
    with st.spinner("Timing dense and masked attention on this machine (a few seconds)…"):
        points = cached_cost(union)
    show_figure(cost_figure(points), "sparse_cost")
    st.markdown(cost_summary(points))
    st.dataframe(cost_frame(points), hide_index=True)
    st.caption("4 heads × 64 dimensions, float32 on one CPU thread, the fastest of at least 3 calls; memory is "
               "the peak of torch's allocations during a call (torch.profiler), plus the mask. The block-sparse "
               "estimate scales the dense numbers by the share of 32 × 32 blocks holding an active cell. Other users "
               "of this machine slow every number alike.")


def render() -> None:
    st.title("Sparse attention patterns")
    st.caption("A pattern says which keys each query may attend to (rows: queries, columns: keys). "
               "Long-context models use them to avoid computing all n² pairs.")
    view = view_ui()
    try:
        patterns = heads_ui()
        {"Pattern": pattern_view, "Growth": growth_view, "Reachability": reach_view, "Live model": live_view,
         "Cost": cost_view}[view](patterns)
    except PatternError as error:
        st.error(str(error))


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
