"""Dot-product scaling: why attention divides q·k by √d, on random vectors and in the live model."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
import streamlit as st

from models import AttentionRun, LoadedModel, attention_stacks, run_attention
from models.core.run import SHORT_TOKENS, first_tokens, first_tokens_notice
from models.core.scores import IDENTITY_TOLERANCE, ScoreStack, ScoresUnavailable
from models.scaling.live import head_scores, neuron_view
from models.scaling.random_vectors import (
    CLASSIC_SAMPLES,
    DotProductSample,
    MeanAbsCurve,
    SoftmaxSweep,
    classic_demonstration,
    dot_product_sample,
    log_grid,
    mean_abs_curve,
    softmax_sweep,
    temperature_example,
)
from pages._shared import bound, cached_model, current_run, current_texts, run_app_instead, show_figure
from pages._widgets import index_control, stack_ui
from viz.scaling import (
    dot_product_histograms,
    mean_abs_figure,
    neuron_figure,
    score_histograms,
    softmax_sweep_figure,
    temperature_figure,
)

D_KEY, SAMPLES_KEY, SEED_KEY, KEYS_KEY, TEMPERATURE_KEY = "d", "samples", "seed", "keys", "temperature"
# the live-model controls have keys of their own: a link to this page never moves the Heads page's focus
STACK_KEY, LAYER_KEY, HEAD_KEY, QUERY_KEY = "scores_stack", "scores_layer", "scores_head", "neuron_query"
CURVE_DIMS = log_grid(1, 16384)  # the x values of the curves against d
TRIALS = 500  # softmax trials per d
DIMS = sorted(set(CURVE_DIMS) | {10, 100, 1000, 10_000})  # the d slider: log steps, plus the classic 10 and 10000
SAMPLE_COUNTS = [100, 200, 500, 1000, 2000]  # 2000 pairs at d = 16384 already take seconds
KEY_COUNTS = [2, 4, 8, 16, 32, 64, 128, 256]
TEMPERATURES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


# --- cached computations: random-vector samples and sweeps keyed by their settings, the live run ---

@st.cache_data(max_entries=16, show_spinner=False)
def cached_sample(d: int, n_samples: int, seed: int) -> DotProductSample:
    return dot_product_sample(d, n_samples, seed)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_curve(n_samples: int, seed: int) -> MeanAbsCurve:
    return mean_abs_curve(CURVE_DIMS, n_samples, seed)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_classic(seed: int) -> MeanAbsCurve:
    return classic_demonstration(seed)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_sweep(n_keys: int, seed: int) -> SoftmaxSweep:
    return softmax_sweep(CURVE_DIMS, n_keys, TRIALS, seed)


@st.cache_resource(max_entries=2, show_spinner=False)
def cached_scored_run(spec: str, text: str, text_pair: str, limit: int | None = None) -> AttentionRun:
    """The run with q, k and pre-softmax scores: twice a plain run's arrays (150 MB for MiniLM at
    512 tokens), so kept as one read-only copy rather than unpickled on every rerun. `limit`: on
    the text's first tokens only."""
    loaded = cached_model(spec)
    return run_attention(first_tokens(loaded, limit) if limit else loaded, text, text_pair or None, with_scores=True)


# --- widgets: each returns what it read ---

def random_vectors_ui() -> tuple[int, int, int]:
    left, middle, right = st.columns([3, 2, 1])
    d = left.select_slider("Dimension d of q and k (log steps)", DIMS, value=64, **bound(D_KEY))
    n_samples = middle.select_slider("Samples (pairs q, k)", SAMPLE_COUNTS, value=1000, **bound(SAMPLES_KEY))
    seed = right.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, **bound(SEED_KEY))
    return d, n_samples, int(seed)


def keys_ui() -> int:
    return st.select_slider("Number of keys n the query is compared with", KEY_COUNTS, value=16, **bound(KEYS_KEY))


def temperature_ui() -> float:
    return st.select_slider("Temperature t", TEMPERATURES, value=1, **bound(TEMPERATURE_KEY),
                            help="softmax(q·k / t); scaled dot-product attention uses t = √d.")


def focus_ui(layers: int, heads: int, queries: int) -> tuple[int, int, int]:
    left, middle, right = st.columns(3)
    return (index_control(left, "Layer", layers, LAYER_KEY, "layer"),
            index_control(middle, "Head", heads, HEAD_KEY, "head"),
            index_control(right, "Query token (position) for the neuron view", queries, QUERY_KEY, "query token",
                          "this text", of_text=True))


def random_vectors_section() -> tuple[int, int]:
    st.header("Random vectors: q·k grows with the dimension")
    st.markdown("Take q and k with d independent N(0, 1) components. Then q·k has mean 0 and "
                "**variance d** (Vaswani et al. 2017, footnote 4): dividing by **√d** brings it back to variance 1.")
    d, n_samples, seed = random_vectors_ui()
    with st.spinner("Sampling random vectors…"):
        sample = cached_sample(d, n_samples, seed)
    show_figure(dot_product_histograms(sample), f"dot_products_d{d}_n{n_samples}_seed{seed}")
    unscaled, scaled = sample.variances
    st.caption(f"Sample variance: q·k {unscaled:.4g} (theory {d}); q·k / √d {scaled:.3f} (theory 1).")
    with st.spinner("Sampling every dimension…"):
        curve = cached_curve(n_samples, seed)
    show_figure(mean_abs_figure(curve, sample), f"mean_abs_dot_n{n_samples}_seed{seed}")
    classic_section(seed)
    return d, seed


def classic_section(seed: int) -> None:
    classic = cached_classic(seed)
    st.markdown(f"**The classic demonstration** ({CLASSIC_SAMPLES} samples, seed {seed}): mean |q·k| is about 2.5 "
                "at d = 10 and about 80 at d = 10000.")
    columns = st.columns(len(classic.dims))
    for column, d, sampled, exact in zip(columns, classic.dims, classic.sampled, classic.exact):
        column.metric(f"mean |q·k| at d = {d}", f"{sampled:.2f}", help=f"exact expectation {exact:.4f}")
        column.caption(f"exact E|q·k| = {exact:.3f}")


def softmax_section(d: int, seed: int) -> None:
    st.header("What the scale does to the softmax")
    st.markdown("Without the scale, the scores of one query spread further apart as d grows: the softmax puts "
                "nearly all weight on one key (entropy to 0) and its gradient vanishes. With q·k / √d "
                "nothing depends on d.")
    n_keys = keys_ui()
    show_figure(softmax_sweep_figure(cached_sweep(n_keys, seed)), f"softmax_vs_d_n{n_keys}_seed{seed}")
    temperature = temperature_ui()
    example = temperature_example(d, n_keys, seed, temperature)
    show_figure(temperature_figure(example), f"temperature_d{d}_t{temperature}")
    st.caption(f"At t = {temperature:g}: largest weight {example.max_weight:.3f}, entropy {example.entropy:.3f} "
               f"nats (uniform: ln {n_keys}). The dimension d = {d} is the one chosen above.")


def scaling_note(stack: ScoreStack, layer: int) -> str:
    d = stack.d_head
    note = f"d_head = {d}: "
    if stack.scales_by_sqrt_d(layer):
        note += f"the model multiplies q·k by 1/√{d} = {stack.standard_scaling:.4g} before the softmax."
    elif stack.scaling[layer] == 1:
        note += (f"**this model does not scale** q·k (factor 1, where 1/√{d} = {stack.standard_scaling:.4g} "
                 "would be standard): its training has to keep the raw scores in range instead.")
    else:
        note += (f"**this model scales by {stack.scaling[layer]:.4g}**, not by 1/√{d} = "
                 f"{stack.standard_scaling:.4g}.")
    if stack.bias is not None:
        note += " It also adds a learned position bias to the scores before the softmax (the neuron view's '+ bias')."
    return note


def vectors_note(loaded: LoadedModel, stack: ScoreStack, head: int) -> str:
    """Where q and k come from: after rotary position embeddings, and whose key head a query head reads."""
    notes = []
    if loaded.rotary:
        notes.append("q and k are shown as the model multiplies them: after its rotary position embedding (RoPE, Su "
                     "et al. 2021), which turns each pair of their components by an angle that grows with the "
                     "token's position, so q·k also depends on how far apart the two tokens are.")
    if stack.name in ("self-attention", "decoder") and loaded.num_key_value_heads < loaded.num_heads:
        group = loaded.kv_group(head)
        sharing = loaded.kv_group_heads(group)
        notes.append(f"Grouped-query attention: head {head} reads key/value head {group}, whose keys heads "
                     f"{sharing[0]}–{sharing[-1]} share ({loaded.num_key_value_heads} key/value heads for "
                     f"{loaded.num_heads} query heads).")
    return " ".join(notes)


def identity_check(stack: ScoreStack) -> None:
    error = stack.identity_error
    if error <= IDENTITY_TOLERANCE:
        st.caption(f"Check: softmax(scaled scores + position bias + mask) reproduces this model's attention "
                   f"weights (largest difference {error:.1e}).")
    else:
        st.warning(f"softmax(scaled scores + position bias + mask) differs from this model's attention weights by "
                   f"up to {error:.2g}: it changes the scores in a way this page does not show.")


def live_section() -> None:
    st.header("Inside the live model")
    result = current_run()
    if result is None:
        return
    loaded, whole = result
    text, text_b = current_texts()
    limit = SHORT_TOKENS if whole.attentions is None else None  # a long run keeps no scores
    try:
        with st.spinner("Capturing queries and keys…"):
            run = cached_scored_run(loaded.spec, text, text_b, limit)
    except ScoresUnavailable as error:
        st.warning(str(error))
        return
    if limit:
        st.info(first_tokens_notice("Capturing the scores (q, k and every pre-softmax q·k)", run.n, whole.n))
    tokens = attention_stacks(run)
    name = stack_ui(list(run.score_stacks), STACK_KEY)
    stack, names = run.score_stacks[name], tokens[name]
    st.caption(f"{loaded.spec}: {loaded.kind} ({loaded.config.model_type}), {stack.scores.shape[0]} layers × "
               f"{stack.scores.shape[1]} heads, {len(names.query_tokens)} × {len(names.key_tokens)} tokens "
               "of the sidebar's text.")
    layer, head, query = focus_ui(stack.scores.shape[0], stack.scores.shape[1], len(names.query_tokens))
    st.markdown(scaling_note(stack, layer))
    if note := vectors_note(loaded, stack, head):
        st.caption(note)
    identity_check(stack)
    title = f"{loaded.spec}, {name}, layer {layer}, head {head}: scores of every visible query-key pair"
    show_figure(score_histograms(head_scores(stack, layer, head), title),
                f"scores_{loaded.spec}_{name}_L{layer}_H{head}")
    st.caption("The black curves are the random-vector baseline for this d_head: what q·k would be if q and k "
               "had independent N(0, 1) components.")
    view = neuron_view(stack, layer, head, query)
    where = f"layer {layer}, head {head} ({name})"
    show_figure(neuron_figure(view, names.key_labels, names.query_labels[query], query, where),
                f"neuron_{loaded.spec}_{name}_L{layer}_H{head}_q{query}")
    st.caption("Red components are positive, blue negative; grey bars are keys the mask hides from this query.")


def render() -> None:
    st.title("Dot-product scaling: why attention divides by √d")
    d, seed = random_vectors_section()
    softmax_section(d, seed)
    live_section()


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
