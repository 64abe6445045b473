"""Adaptive attention span (Sukhbaatar et al. 2019): the soft mask, the mask applied to the live
model's attention, and a small model whose heads learn their spans while you watch."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
import time

import streamlit as st

from models.core.tiles import MAX_WINDOW
from models.span.corpus import SOURCE_NAME, copy_distance, generate_corpus
from models.span.lm import (
    SpanLMConfig,
    SpanTrainConfig,
    TrainedRun,
    TrainingTextError,
    TrainProgress,
    decode_text,
    train_span_lm,
)
from models.span.mask import SpanEffect, apply_span, mask_curve, parse_spans, span_savings, tiled_span_effect
from models.span.runs import META_FILE, SavedRunInfo, SpanRunError, list_runs, load_run, runs_dir, save_run
from pages._shared import (
    bound,
    cached_run,
    current_run,
    current_spec,
    current_texts,
    int_control_state,
    link_value_explained,
    run_app_instead,
    show_figure,
    time_left,
)
from pages._widgets import focus_ui, forget_unless_offered
from viz.adaptive_span import (
    Curve,
    mask_curves_figure,
    removed_mass_figure,
    span_bars_figure,
    span_heatmap,
    spans_over_steps_figure,
)
from viz.heatmap import WINDOW_KEY_TICKS, attention_heatmap
from viz.labels import MAX_TICK_LABELS, markdown_literal
from viz.theme import file_stem, head_color

MAX_SPANS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
S_KEY, Z_KEY, R_KEY, OTHERS_KEY = "span_S", "span_z", "span_R", "span_others"
LAYER_KEY, HEAD_KEY, RUN_KEY = "span_layer", "span_head", "span_run"
SOURCE_KEY, STEPS_KEY, LAMBDA_KEY = "train_text", "train_steps", "train_lambda"
TRAIN_RAMP_KEY, INIT_KEY, LAYERS_KEY, HEADS_KEY, TRAIN_S_KEY = "train_ramp", "train_init", "train_layers", \
    "train_heads", "train_S"
SOURCES = (SOURCE_NAME, "my text file")
STEP_CHOICES = (20, 50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 3000)
LAMBDA_CHOICES = (0.0, 1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
DEFAULT_SPAN_LM, DEFAULT_TRAINING = SpanLMConfig(), SpanTrainConfig()


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_span_run(name: str, saved_at: float) -> TrainedRun:
    """A saved run, loaded once per process (saved_at: run.json's mtime, so a re-save reloads)."""
    return load_run(name)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_span_effect(spec: str, text: str, text_b: str, layer: int, head: int, z: int, ramp: int,
                       shown: int) -> SpanEffect:
    """The span applied to one head of a long run, the first `shown` tokens kept for the figures."""
    return tiled_span_effect(cached_run(spec, text, text_b).weights(), layer, head, z, ramp, slice(0, shown))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# ---- controls: each returns what it read; every value lives in the URL ----

def curve_ui() -> tuple[int, int, int, str]:
    """(S, z, R) in tokens, and the other heads' spans as typed."""
    columns = st.columns([2, 2, 2, 3])
    max_span = columns[0].select_slider("S: maximum span (tokens)", MAX_SPANS, value=32, **bound(S_KEY))
    z = columns[1].slider("z: span (tokens)", 0, max_span, min(6, max_span),
                          **int_control_state(Z_KEY, 0, max_span, "span", f"the range of S = {max_span}"))
    ramp = columns[2].slider("R: ramp (tokens)", 1, 64, 4, **bound(R_KEY))
    others = columns[3].text_input("Other heads' spans z to overlay (tokens, comma-separated)", "2, 14, 24",
                                   **bound(OTHERS_KEY))
    return max_span, z, ramp, others


def training_ui() -> tuple[str, object, SpanLMConfig, SpanTrainConfig]:
    """(text source, uploaded file or None, model settings, training settings), inside a form."""
    source = st.radio("Training text", SOURCES, horizontal=True, **bound(SOURCE_KEY))
    upload = st.file_uploader("Text file (UTF-8)", type=["txt", "md", "csv", "py"],
                              help="used when 'my text file' is chosen; any plain text of a few kB or more")
    columns = st.columns(4)
    steps = columns[0].select_slider("Training steps", STEP_CHOICES, value=DEFAULT_TRAINING.steps, **bound(STEPS_KEY))
    span_loss = columns[1].select_slider("λ: span loss", LAMBDA_CHOICES, value=DEFAULT_TRAINING.span_loss,
                                         **bound(LAMBDA_KEY), help="0 switches the span loss off")
    ramp = columns[2].slider("R: ramp (characters)", 1, 32, DEFAULT_SPAN_LM.ramp, **bound(TRAIN_RAMP_KEY))
    init = columns[3].slider("Start span z/S", 0.0, 1.0, DEFAULT_SPAN_LM.init_fraction, 0.05, **bound(INIT_KEY),
                             help="1: every head starts seeing all S characters; 0: only the ramp (the "
                                  "reference code's default)")
    columns = st.columns(4)
    layers = columns[0].slider("Layers", 1, 4, DEFAULT_SPAN_LM.n_layers, **bound(LAYERS_KEY))
    heads = columns[1].select_slider("Heads per layer", (1, 2, 4, 8), value=DEFAULT_SPAN_LM.n_heads, **bound(HEADS_KEY))
    max_span = columns[2].select_slider("S: maximum span (characters)", (32, 64, 128), value=DEFAULT_SPAN_LM.max_span,
                                        **bound(TRAIN_S_KEY), help="also the context the model trains on")
    model = SpanLMConfig(n_layers=layers, n_heads=heads, max_span=max_span, ramp=ramp, init_fraction=init)
    return source, upload, model, SpanTrainConfig(steps=steps, span_loss=span_loss)


def run_picker_ui(runs: list[SavedRunInfo]) -> SavedRunInfo:
    names = [info.name for info in runs]
    asked = st.query_params.get(RUN_KEY)
    if asked is not None and asked not in names and RUN_KEY not in st.session_state:
        st.warning(f"The link asks for the saved run '{markdown_literal(asked)}', which isn't on this machine: "
                   "showing the newest.")
        link_value_explained(RUN_KEY)
    forget_unless_offered(RUN_KEY, names)
    name = st.selectbox("Saved run", names, **bound(RUN_KEY), help=f"saved under {runs_dir()}")
    return runs[names.index(name)]


# ---- sections ----

def formula_section() -> tuple[int, int]:
    """The mask curve and its formula; returns (z, R) for the live model's section."""
    st.header("The masking function")
    max_span, z, ramp, others_text = curve_ui()
    plot, formula = st.columns([3, 2])
    with formula:
        st.latex(r"m_z(x) = \min\Bigl(\max\Bigl(\frac{R + z - x}{R},\ 0\Bigr),\ 1\Bigr)")
        st.markdown("A head multiplies its attention to a key **x tokens back** by m_z(x) and renormalises "
                    "each row:")
        st.latex(r"a_{tr} = \frac{m_z(t-r)\,e^{s_{tr}}}{\sum_q m_z(t-q)\,e^{s_{tq}}}")
        st.markdown(f"1 up to **z = {z}**, a linear ramp of **R = {ramp}**, 0 from **z + R = {z + ramp}** on. "
                    f"The ramp makes the loss differentiable in z, so z is learned; it is stored as "
                    f"z/S = {z / max_span:.2f} and clamped to [0, 1].")
    curves = [Curve(f"focused head: z = {z}", *mask_curve(z, ramp, max_span), width=4)]
    try:
        others = parse_spans(others_text)
    except ValueError as error:
        st.warning(f"Other heads' spans: {error}")
        others = []
    if any(span > max_span for span in others):
        st.info(f"Spans above S = {max_span} are drawn at S: z can't exceed the maximum span.")
    curves += [Curve(f"z = {span:g}", *mask_curve(min(span, max_span), ramp, max_span), color=head_color(k),
                     dash="dash", width=2) for k, span in enumerate(others)]
    with plot:
        show_figure(mask_curves_figure(curves, max_span, "tokens", f"Soft span mask, S = {max_span}, R = {ramp}",
                                       marks=(z, z + ramp)), f"span_mask_z{z}_R{ramp}_S{max_span}")
    return z, ramp


def applied_section(z: int, ramp: int) -> None:
    st.header("Applied to real attention")
    result = current_run()
    if result is None:
        return
    loaded, run = result
    distance = "i − j (the model is causal)" if run.causal else "|i − j| (the model sees both sides)"
    st.caption(f"{loaded.spec}: each attention row times m_z(distance), distance = {distance}, with the z = {z} "
               f"and R = {ramp} above; then each row is renormalised to sum to 1.")
    layer, head = focus_ui(run.num_layers, run.num_heads, LAYER_KEY, HEAD_KEY)
    if run.attentions is None:  # a long run: the head recomputed in row tiles, drawn on a window
        shown = slice(0, min(run.n, MAX_WINDOW))
        with st.spinner("Recomputing the head…"):
            effect = cached_span_effect(loaded.spec, *current_texts(), layer, head, z, ramp, shown.stop)
        before, labels = run.window(layer, head, shown, shown), run.labels[shown]
        st.info(f"The heatmaps show the first {shown.stop} of this text's {run.n:,} tokens as queries and keys (a "
                f"figure shows at most {MAX_WINDOW} × {MAX_WINDOW} weights); the metrics and the mass each query "
                "loses read every token, the head recomputed in row tiles.")
    else:
        before, labels = run.attentions[layer, head], run.labels
        effect = apply_span(before, z, ramp, run.causal)
    top = float(max(before.max(), effect.after.max()))
    stem = file_stem("span", current_spec(), f"L{layer}", f"H{head}", f"z{z}", f"R{ramp}")
    long = run.attentions is None  # up to MAX_WINDOW tokens a side: each heatmap across the page, one above the other
    left, right = (st.container(), st.container()) if long else st.columns(2)
    ticks = WINDOW_KEY_TICKS if long else MAX_TICK_LABELS
    with left:
        show_figure(attention_heatmap(before, labels, labels, f"Before: layer {layer}, head {head}",
                                      causal=run.causal, zmax=top, key_ticks=ticks), f"{stem}_before")
    with right:
        show_figure(span_heatmap(effect.after, effect.mask, labels, f"After the span mask (z = {z}, R = {ramp})",
                                 run.causal, top, ticks), f"{stem}_after")
    st.caption(f"Grey cells {'just above' if long else 'on the right'}: keys the span cuts off (mask 0)" +
               (", and the future a causal model never sees." if run.causal else "."))
    columns = st.columns(3)
    columns[0].metric("Cells set to zero", f"{effect.zeroed_share:.0%}",
                      help="share of the query-key cells this head may see whose mask is 0")
    columns[1].metric("Mass removed, mean over queries", f"{effect.removed.mean():.1%}")
    columns[2].metric("Mass removed, worst query", f"{effect.removed.max():.1%}")
    show_figure(removed_mass_figure(effect.removed, run.labels, "Attention mass each query loses to the mask "
                                                                 "(before renormalising)"), f"{stem}_removed")


def train_section(has_runs: bool) -> None:
    with st.expander("Train a new run", expanded=not has_runs):
        with st.form("span_training", border=False):
            source, upload, model_config, train_config = training_ui()
            submitted = st.form_submit_button("Train", type="primary", icon=":material/model_training:")
        st.caption(f"At the defaults ({DEFAULT_TRAINING.steps:,} steps) training takes from half a minute on a quiet "
                   "2-core CPU to many minutes when other work shares the machine; the bar estimates the time left. "
                   "Changing a control on the page while it runs stops it. Ahead of time: `python -m models.span "
                   f"--steps {DEFAULT_TRAINING.steps}`.")
    if submitted:
        train_and_save(source, upload, model_config, train_config)


def training_text(source: str, upload) -> tuple[str, str] | None:
    """(text, its name) to train on, or None after saying what is missing; raises TrainingTextError."""
    if source == SOURCE_NAME:
        return generate_corpus(), SOURCE_NAME
    if upload is None:
        st.warning("Choose a text file to train on, or pick the generated corpus.")
        return None
    return decode_text(upload.getvalue(), upload.name), upload.name


def train_and_save(source: str, upload, model_config: SpanLMConfig, train_config: SpanTrainConfig) -> None:
    """Train with a progress bar, save the run and select it in the run picker below."""
    try:
        chosen = training_text(source, upload)
        if chosen is None:
            return
        bar = st.progress(0.0, text="Starting…")
        started = time.perf_counter()

        def report(progress: TrainProgress) -> None:
            step, total = progress.step, progress.total_steps
            bar.progress(step / total, text=f"Step {step} of {total}: loss {progress.lm_loss:.3f} nats/char, mean span "
                                            f"{progress.spans.mean():.1f} characters"
                                            + (f", {time_left(started, step, total)}" if 0 < step < total else ""))

        run = train_span_lm(chosen[0], model_config, train_config, report, source=chosen[1])
        name = save_run(run)
    except (TrainingTextError, SpanRunError) as error:
        st.error(str(error))
        return
    st.success(f"Trained in {run.train_seconds:.0f} s and saved as {name}.")
    st.session_state[RUN_KEY] = name


def learned_section() -> None:
    st.header("Spans learned live")
    st.markdown("A small character-level causal transformer with an adaptive span in every head, trained on the "
                "CPU. Its loss is the language-model loss plus **λ·S·mean(z/S)** per layer, so a head keeps a long "
                "span only if the characters far back pay for it.")
    runs = list_runs()
    train_section(bool(runs))
    runs = list_runs()
    if not runs:
        st.info("No trained run on this machine yet: train one above (half a minute to many minutes on 2 CPU cores, "
                "depending on what else runs), or ahead of time with `python -m models.span`.")
        return
    info = run_picker_ui(runs)
    st.caption(f"{info.created} · trained on the {info.source} · {info.steps} steps · final loss "
               f"{info.final_loss:.3f} nats/char · mean span {info.mean_span:.1f} characters")
    try:
        trained = cached_span_run(info.name, (runs_dir() / info.name / META_FILE).stat().st_mtime)
    except (SpanRunError, OSError) as error:
        st.error(str(error))
        return
    trained_views(trained, info.name)


def trained_views(trained: TrainedRun, name: str) -> None:
    config, spans = trained.model_config, trained.spans()
    st.subheader("Learned span of every head")
    show_figure(span_bars_figure(spans, config.max_span,
                                 f"Learned spans, {plural(config.n_layers, 'layer')} × "
                                 f"{plural(config.n_heads, 'head')} (λ = {trained.train_config.span_loss:g})"),
                f"span_bars_{name}")
    if trained.source == SOURCE_NAME:
        st.caption(f"Each head reads z plus the {config.ramp}-character ramp. In the generated corpus each line is a "
                   f"phrase, a bar and the same phrase again: a character of the copy is {copy_distance()} "
                   "characters after its original. Heads that copy need long spans (with the ramp and the layer "
                   "below reaching that far); the others can shrink to 0.")
    st.subheader("All heads' masking curves")
    curves = [Curve(f"L{layer} H{head}: z = {spans[layer, head]:.1f}",
                    *mask_curve(spans[layer, head], config.ramp, config.max_span), color=head_color(head),
                    dash=("solid", "dash", "dot", "dashdot")[layer % 4], width=2.5)
              for layer in range(config.n_layers) for head in range(config.n_heads)]
    show_figure(mask_curves_figure(curves, config.max_span, "characters",
                                   f"Masking curves of every head (R = {config.ramp})"), f"span_curves_{name}")
    st.subheader("Spans over training")
    history = trained.history
    show_figure(spans_over_steps_figure(history.steps, history.spans_array(), history.lm_loss, config.max_span,
                                        f"Spans and loss over {history.steps[-1]} steps (trained in "
                                        f"{trained.train_seconds:.0f} s)"), f"span_history_{name}")
    savings_section(trained)


def savings_section(trained: TrainedRun) -> None:
    config = trained.model_config
    saved = span_savings(trained.spans(), config.max_span, config.ramp, config.head_dim)
    st.subheader("What the spans save")
    columns = st.columns(3)
    columns[0].metric("Average span read (z + R, at most S)", f"{saved.mean_span:.1f} of {saved.max_span}",
                      f"{saved.fraction - 1:.0%} vs S", delta_color="inverse")
    columns[1].metric("Attention FLOPs per token", f"{saved.flops_per_token:,.0f}",
                      f"of {saved.full_flops_per_token:,.0f} at span S", delta_color="off", delta_arrow="off")
    columns[2].metric("Key/value memory per token", f"{saved.bytes_per_token / 1024:,.1f} KiB",
                      f"of {saved.full_bytes_per_token / 1024:,.1f} KiB at span S", delta_color="off",
                      delta_arrow="off")
    st.caption(f"Per query, a head reads min(z + R, S) keys: q·k and a·v cost 2 FLOPs per key and dimension each "
               f"({config.head_dim} dimensions a head), and keeping a key and a value costs 8 bytes per dimension "
               f"(float32), summed over {config.n_layers * config.n_heads} heads.")


def render() -> None:
    st.title("Adaptive attention span")
    st.caption("Sukhbaatar et al. 2019: each head learns how far back it looks, through a soft mask that is "
               "differentiable in its span z.")
    z, ramp = formula_section()
    applied_section(z, ramp)
    learned_section()


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
