"""Checkpoints: a masked LM's predictions for one text at each point of its training, side by side,
the candidates' probability and rank over steps, the loss curve, and two checkpoints' attention."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
from pathlib import Path

import streamlit as st

from models import AttentionRun, ModelLoadError, RunError, load_model
from models.checkpoints.demo import demo_series_dir, demo_series_ready, ensure_demo_series
from models.checkpoints.discovery import (
    Checkpoint,
    SeriesError,
    find_checkpoints,
    fingerprint,
    hub_checkpoints,
    multiberts_ids,
)
from models.checkpoints.series import CheckpointFill, all_candidates, fill_checkpoint, final_top, trajectories
from models.checkpoints.training_log import TrainingLog, read_training_log
from models.core.predictions import NoMaskError
from models.core.run import cut_notice, run_keeping_weights
from models.core.settings import settings_from_env
from models.core.storage import write_error_message
from pages._shared import (
    bound,
    int_control_state,
    lecture_mode,
    overview_grid,
    run_app_instead,
    safe_callback,
    show_figure,
)
from pages._widgets import focus_on_click, focus_ui, forget_unless_offered, special_tokens_ui
from viz.checkpoints import loss_figure, trajectory_figure
from viz.compare import shared_zmax
from viz.heatmap import attention_heatmap
from viz.overview import ThumbnailGrid, heads_overview
from viz.predictions import topk_table
from viz.theme import LECTURE_SCALE, file_stem

# keys of their own: a link to this page never moves another page's controls
SOURCE_KEY, FOLDER_KEY, HUB_KEY, TEXT_KEY, TOP_K_KEY = "ckpt_source", "ckpt_folder", "ckpt_hub", "ckpt_text", "ckpt_k"
MASK_KEY, CANDIDATES_KEY, LOG_KEY, SPECIAL_KEY = "ckpt_mask", "ckpt_candidates", "ckpt_log", "ckpt_special"
A_KEY, B_KEY, LAYER_KEY, HEAD_KEY = "ckpt_a", "ckpt_b", "ckpt_layer", "ckpt_head"
OVERVIEW_KEYS = ("ckpt_overview_a", "ckpt_overview_b")
DEMO, FOLDER, HUB = "demo series", "folder", "hub ids"
DEFAULT_TEXT = "The capital of [MASK] is Rome."


# --- cached computations: one model in memory at a time, results kept ---

@st.cache_data(max_entries=96, show_spinner=False)  # each holds [masks, vocab] probabilities
def cached_fill(spec: str, step: int | None, problem: str | None, signature: str, text: str,
                top_k: int, include_special: bool) -> CheckpointFill:
    """`signature` changes when the checkpoint folder is rewritten."""
    return fill_checkpoint(Checkpoint(spec, step, problem), text, top_k, settings_from_env(), include_special)


@st.cache_data(max_entries=4, show_spinner=False)
def cached_attention(spec: str, signature: str, text: str) -> tuple[AttentionRun, ThumbnailGrid, str | None]:
    """(the run, every head as a thumbnail, why the run reads only the text's first tokens)."""
    settings = settings_from_env()
    loaded = load_model(spec, settings)
    run = run_keeping_weights(loaded, text, max_chars=settings.max_text_chars)
    return run, overview_grid(run.attentions), cut_notice("The attention of a checkpoint", run, loaded.max_tokens)


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def cached_hub_checkpoints(specs: tuple[str, ...]) -> list[Checkpoint]:
    return hub_checkpoints(list(specs))  # checks the network once a minute at most


# --- widgets: each returns what it read ---

def _use_multiberts() -> None:
    st.session_state[HUB_KEY] = "\n".join(multiberts_ids(0))


def source_ui() -> str:
    return st.segmented_control("Checkpoint series", (DEMO, FOLDER, HUB), default=DEMO, required=True,
                                **bound(SOURCE_KEY),
                                help="the offline demo series; a folder of Trainer checkpoint-N folders; "
                                     "or hub ids, one checkpoint each") or DEMO


def folder_ui() -> str:
    return st.text_input("Folder of checkpoint-N folders (a Trainer's output_dir)", "",
                         placeholder="/path/to/run", **bound(FOLDER_KEY)).strip()


def hub_ui() -> list[str]:
    left, right = st.columns([4, 1])
    text = left.text_area("Hub ids, one checkpoint per line", "", height=110, **bound(HUB_KEY),
                          placeholder="google/multiberts-seed_0-step_0k\ngoogle/multiberts-seed_0-step_2000k")
    right.button("MultiBERTs preset", on_click=safe_callback(_use_multiberts), icon=":material/playlist_add:",
                 help="google/multiberts-seed_0-step_0k … step_2000k: 29 BERT-base checkpoints (440 MB each); "
                      "they load only where the hub is reachable or they are already in the local cache")
    return [line.strip() for line in text.splitlines() if line.strip()]


def text_ui() -> tuple[str, int, bool]:
    """(the text, top k, whether special tokens are listed)."""
    left, middle, right = st.columns([4, 1, 1], vertical_alignment="bottom")
    text = left.text_input("Text with one or more masks", DEFAULT_TEXT, **bound(TEXT_KEY),
                           help="write the model's own mask token where a word should be predicted: [MASK] for "
                                "BERT and the demo series, <mask> for RoBERTa")
    top_k = middle.slider("Top k", 1, 20, 5, **int_control_state(TOP_K_KEY, 1, 20, "prediction count", "this page"))
    return text, top_k, special_tokens_ui(SPECIAL_KEY, right)


def mask_ui(count: int) -> int:
    if count == 1:
        return 0
    options = [f"mask {i + 1}" for i in range(count)]
    forget_unless_offered(MASK_KEY, options)  # left over from a text with more masks
    choice = st.segmented_control("Which mask", options, default=options[0], required=True, **bound(MASK_KEY))
    return options.index(choice or options[0])


def candidates_ui(options: list[str], default: list[str]) -> tuple[list[str], bool]:
    """(candidate words to follow, log scale)."""
    forget_unless_offered(CANDIDATES_KEY, options)  # words of another text or series
    left, right = st.columns([5, 1])
    chosen = left.multiselect("Candidates to follow", options, default=default, **bound(CANDIDATES_KEY),
                              help="every word some checkpoint ranked in its top k; by default the last "
                                   "checkpoint's top k")
    log = right.toggle("Log scale", value=True, **bound(LOG_KEY),
                       help="early checkpoints spread their probability thinly: a log axis shows them too")
    return chosen, log


def checkpoint_pair_ui(labels: list[str]) -> tuple[str, str]:
    for key in (A_KEY, B_KEY):
        forget_unless_offered(key, labels)
    left, right = st.columns(2)
    a = left.selectbox("Checkpoint A", labels, index=0, **bound(A_KEY))
    b = right.selectbox("Checkpoint B", labels, index=len(labels) - 1, **bound(B_KEY))
    return a, b


# --- page sections ---

def demo_checkpoints() -> list[Checkpoint] | None:
    if not demo_series_ready():
        st.info("The demo series isn't built yet: a small BERT (2 layers × 4 heads) trained from scratch on "
                "sentences generated from a table of countries, capitals and languages, saved at 8 steps. "
                "Training takes 1–2 minutes on 2 CPU cores, once; then it is kept on disk. Changing a control "
                "while it trains stops it. Ahead of time: `python -m models.checkpoints --demo`.")
        if st.button("Train the demo series", type="primary", icon=":material/model_training:"):
            train_demo()
        return None
    return find_checkpoints(demo_series_dir())


def train_demo() -> None:
    bar = st.progress(0.0, text="Starting…")

    def report(step: int, total: int) -> None:
        bar.progress(step / total, text=f"Training the demo series: step {step} of {total}")

    try:
        ensure_demo_series(progress=report)
    except OSError as error:  # checkpoints are staged: a failed save leaves none half-written
        bar.empty()
        st.error(write_error_message(error, demo_series_dir()))
        return
    bar.empty()
    st.rerun()


def folder_checkpoints(folder: str) -> list[Checkpoint] | None:
    if not folder:
        st.info("Type the folder that holds the checkpoint-N folders (the output_dir of a Hugging Face Trainer, "
                "or of `python -m models.checkpoints`).")
        return None
    if not settings_from_env().folder_allowed(Path(folder).expanduser()):
        st.error(f"This server doesn't read '{folder}'; ask its host to allow the folder (EXPLORER_ALLOWED_FOLDERS).")
        return None
    try:
        checkpoints = find_checkpoints(folder)
    except SeriesError as error:
        st.error(str(error))
        return None
    if not checkpoints:
        model_hint = " It is a model folder itself: open it on the other pages." if (
            Path(folder).expanduser() / "config.json").is_file() else ""
        st.warning(f"'{folder}' holds no checkpoint-N folders, so there is no series to show.{model_hint}")
        return None
    return checkpoints


def series_ui() -> list[Checkpoint] | None:
    source = source_ui()
    if source == DEMO:
        return demo_checkpoints()
    if source == FOLDER:
        return folder_checkpoints(folder_ui())
    specs = hub_ui()
    if not specs:
        st.info("List hub ids, one per line (e.g. the MultiBERTs preset). They load from the local Hugging Face "
                "cache, or from the hub where it is reachable.")
        return None
    return cached_hub_checkpoints(tuple(specs))


def fill_all(checkpoints: list[Checkpoint], text: str, top_k: int,
             include_special: bool) -> list[CheckpointFill] | None:
    """Every checkpoint's predictions, loading (one at a time) those not cached yet."""
    bar = st.progress(0.0)
    fills = []
    try:
        for index, checkpoint in enumerate(checkpoints):
            bar.progress(index / len(checkpoints), text=f"Loading {checkpoint.label} ({index + 1} of "
                                                        f"{len(checkpoints)})…")
            fills.append(cached_fill(checkpoint.spec, checkpoint.step, checkpoint.problem, fingerprint(checkpoint),
                                     text, top_k, include_special))
    except NoMaskError as error:
        st.warning(str(error))
        return None
    except RunError as error:  # e.g. a text over the server's length cap
        st.error(str(error))
        return None
    finally:
        bar.empty()
    return fills


def problems_section(fills: list[CheckpointFill]) -> None:
    failed = [f for f in fills if f.result is None]
    if not failed:
        return
    lines = "\n".join(f"- **{f.checkpoint.label}**: {f.problem}" for f in failed)
    shown = len(fills) - len(failed)
    st.warning(f"{len(failed)} of {len(fills)} checkpoints can't be shown"
               f"{'; the others are below' if shown else ''}:\n{lines}")


def table_section(good: list[CheckpointFill]) -> None:
    st.subheader("Top predictions at each checkpoint")
    masks = len(good[0].result.masks)
    for index in range(masks):
        tops = [f.result.masks[index].top for f in good]
        if masks > 1:
            st.markdown(f"**Mask {index + 1}**")
        st.html(topk_table([f.checkpoint.label for f in good], [[c.token for c in top] for top in tops],
                           [[c.probability for c in top] for top in tops], LECTURE_SCALE if lecture_mode() else 1.0,
                           [[c.special for c in top] for top in tops]))
    if not lecture_mode():
        st.caption("Columns are checkpoints in training order; each cell is a predicted token and its probability, "
                   "the same as transformers' fill-mask pipeline gives; darker = more probable. Special tokens "
                   "([MASK], [PAD], …) are left out of the list unless shown, marked, by the switch above.")


def trajectories_section(fills: list[CheckpointFill], good: list[CheckpointFill], name: str) -> None:
    st.subheader("Candidates across training")
    mask = mask_ui(len(good[0].result.masks))
    options = all_candidates(fills, mask)
    by_word = {c.token: c for c in reversed(options)}  # one candidate per word, the first seen
    chosen, log = candidates_ui(list(by_word), [c.token for c in final_top(fills, mask) if c.token in by_word])
    if not chosen:
        st.info("Pick at least one candidate word to follow.")
        return
    paths = trajectories(fills, [by_word[word] for word in chosen], mask)
    left, right = st.columns(2)
    with left:
        show_figure(trajectory_figure(paths.labels, paths.steps, paths.tokens, paths.probability, "probability", log,
                                      f"Probability of each candidate at mask {mask + 1}"), f"{name}_probability")
    with right:
        show_figure(trajectory_figure(paths.labels, paths.steps, paths.tokens, paths.rank, "rank", log,
                                      f"Rank of each candidate at mask {mask + 1} among all tokens"), f"{name}_rank")


def loss_section(log: TrainingLog | None, checkpoints: list[Checkpoint], name: str) -> None:
    st.subheader("Training loss")
    if log is None:
        st.info("No checkpoint of this series has a trainer_state.json with logged losses (hub checkpoints don't "
                "carry one), so there is no loss curve.")
        return
    marked = [c for c in checkpoints if c.step is not None and c.problem is None]
    show_figure(loss_figure(log.steps, log.loss, [c.step for c in marked], [c.label for c in marked],
                            "Training loss, with the checkpoints marked"), f"{name}_loss")
    if not lecture_mode():
        st.caption(f"From {log.source}: the loss the Trainer logged every few steps; a diamond where each "
                   "checkpoint was saved.")


def attention_views(label: str, run: AttentionRun, grid: ThumbnailGrid, focus: tuple[int, int], zmax: float,
                    key: str, name: str) -> None:
    show_figure(heads_overview(grid, focus, f"{label}: all heads (click one to focus it)"), f"{name}_heads",
                key=key, on_select=focus_on_click(key, LAYER_KEY, HEAD_KEY), selection_mode="points")
    layer, head = focus
    title = f"{label}: layer {layer}, head {head}"
    show_figure(attention_heatmap(run.attentions[layer, head], run.labels, run.labels, title, zmax=zmax),
                f"{name}_L{layer}_H{head}")


def attention_section(good: list[CheckpointFill], text: str, name: str) -> None:
    st.subheader("Attention of two checkpoints")
    by_label = {f.checkpoint.label: f.checkpoint for f in good}
    pair = checkpoint_pair_ui(list(by_label))
    runs, notices = {}, set()
    for label in dict.fromkeys(pair):
        try:
            run, grid, notice = cached_attention(by_label[label].spec, fingerprint(by_label[label]), text)
        except (ModelLoadError, RunError) as error:
            st.error(f"{label}: {error}")
            continue
        runs[label] = run, grid
        notices.add(notice)
    for notice in notices - {None}:
        st.info(notice + " The predictions above read the whole text.")
    if not runs:
        return
    layers = min(run.num_layers for run, _ in runs.values())
    heads = min(run.num_heads for run, _ in runs.values())
    layer, head = focus = focus_ui(layers, heads, LAYER_KEY, HEAD_KEY)
    zmax = shared_zmax(*(run.attentions[layer, head] for run, _ in runs.values()))
    for column, label, key in zip(st.columns(2), runs, OVERVIEW_KEYS):  # one column when A is B
        with column:
            attention_views(label, *runs[label], focus, zmax, key, file_stem(name, label))
    if not lecture_mode():
        st.caption("The same views as the Attention heads page: every head as a thumbnail (each scaled to its own "
                   "maximum), and the focused head's token × token weights, queries as rows, both heads on one "
                   "colour scale.")


def render() -> None:
    st.title("Masked-LM predictions across training")
    st.caption("What a masked language model predicts for one text at each saved step of its training. This page "
               "reads a checkpoint series and its own text below; the sidebar's model is not used here.")
    checkpoints = series_ui()
    if checkpoints is None:
        return
    text, top_k, include_special = text_ui()
    fills = fill_all(checkpoints, text, top_k, include_special)
    if fills is None:
        return
    problems_section(fills)
    good = [f for f in fills if f.result is not None]
    name = file_stem("checkpoints", Path(checkpoints[-1].spec).parent.name or "hub")
    if good:
        table_section(good)
        trajectories_section(fills, good, name)
    loss_section(read_training_log(checkpoints), checkpoints, name)
    if good:
        attention_section(good, text, name)


if __name__ == "__main__":  # Streamlit ran this file as a script (see run_app_instead)
    run_app_instead()
