"""What every page shares: the cached model and run, URL-bound widget state, figure display.

Pages call `current_run()` (or `current_model()`) and get None after a message has been
shown when there is nothing to draw, so a page never has to handle load errors itself.
"""
import contextlib
import functools
import gc
import logging
import os
import runpy
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import streamlit as st
import transformers

from models import AttentionRun, LoadedModel, ModelLoadError, RunError, load_model, run_attention
from models.analysis.numerics import pooled
from models.core.loading import convert_first
from models.core.settings import settings_from_env
from models.core.tiles import Progress
from viz.labels import markdown_literal
from viz.overview import ThumbnailGrid, thumbnail_cell, thumbnail_grid
from viz.theme import LECTURE_KEY, for_projector, plotly_config

APP = Path(__file__).resolve().parents[1] / "app.py"
MODEL_KEY, TEXT_KEY, TEXT_B_KEY = "model", "text", "text_b"
CACHE_LIMITS = settings_from_env()  # cache sizes are fixed when the server starts
log = logging.getLogger("attention_explorer")


@functools.cache
def setup_process() -> None:
    """The server process's settings, made once: app.py calls this on every run, after its imports."""
    if not log.handlers:  # streamlit configures only its own loggers
        log.addHandler(logging.StreamHandler())
        level = os.environ.get("EXPLORER_LOG_LEVEL", "INFO").upper()  # DEBUG: each page's render time
        log.setLevel(level if level in logging.getLevelNamesMapping() else logging.INFO)
    transformers.logging.set_verbosity_error()  # a page says itself what went wrong
    transformers.logging.disable_progress_bar()  # no download bars in the server's log
    gc.collect()
    gc.freeze()  # imported objects live as long as the process: a full collection walking them took ~230 ms


def run_app_instead() -> None:
    """Run app.py in place of a page file that Streamlit ran as a script.

    Until some run has called st.navigation, a fresh server (and every AppTest run) treats the
    pages/ folder beside app.py as an old-style multipage app: a link to /sparse runs
    pages/sparse.py by itself, without app.py's navigation and sidebar. Page modules only
    define render(), so such a run is handed to app.py, whose st.navigation opens the page."""
    runpy.run_path(str(APP), run_name="__main__")


@st.cache_resource(max_entries=CACHE_LIMITS.max_models, show_spinner=False)
def cached_model(spec: str) -> LoadedModel:
    """One copy per process, shared by all sessions. A failed load is not cached."""
    log.info("loading model %s", spec)  # benchmarks/load_sessions.py counts these lines
    return load_model(spec, settings_from_env())


class Slot:
    """A value computed once and shared, filled in outside any cached function.

    A `st.cache_resource` function that returns a Slot keeps the cache's keys, limits and sharing
    between sessions, while the computation itself (`get`) runs in the page: there its progress
    bar is drawn once, not replayed on every cache hit as elements drawn inside a cached function
    are. If the computation raises (a Streamlit rerun stopping it, a RunError), nothing is kept."""

    def __init__(self):
        self._lock = threading.Lock()  # a second session asking for the same value waits for the first
        self._value = None

    def get(self, compute: Callable[[], object]):
        with self._lock:
            if self._value is None:
                self._value = compute()
            return self._value


@st.cache_resource(max_entries=CACHE_LIMITS.max_runs, show_spinner=False)
def _run_slot(spec: str, text: str, text_pair: str) -> Slot:
    return Slot()


def cached_run(spec: str, text: str, text_pair: str, progress: Progress | None = None) -> AttentionRun:
    """Keyed by (model, text): changing layer or head never re-runs the model. `progress(done, total)`
    is told of each layer of a long run (progress_bar); what it raises stops the run, uncached.

    A resource cache, not st.cache_data: cache_data would unpickle a copy of the run on every
    rerun (90 ms for a 75 MB run at 512 tokens); the run's arrays are read-only instead."""
    return _run_slot(spec, text, text_pair).get(functools.partial(
        run_attention, cached_model(spec), text, text_pair or None, max_chars=settings_from_env().max_text_chars,
        progress=progress))


@contextlib.contextmanager
def progress_bar(what: str) -> Iterator[Progress]:
    """A tiles.Progress callback drawing a bar "`what` 12 of 30…" (e.g. what="Running layer"),
    removed afterwards. Its st call is where a Streamlit rerun (new text, another page) stops the
    computation: Streamlit raises its rerun exception there."""
    bar = st.empty()

    def report(done: int, total: int) -> None:
        bar.progress(done / total, text=f"{what} {done} of {total}…")

    try:
        yield report
    finally:
        bar.empty()


def duration(seconds: float) -> str:
    """A duration as a reader wants it: "45 s", or "3 min" from 90 s on."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def time_left(started: float, done: int, total: int) -> str:
    """ "about 3 min left" after `done` of `total` equal steps begun at time.perf_counter() `started`,
    at the pace so far (on a shared machine the pace changes: an estimate, said as one)."""
    return f"about {duration((time.perf_counter() - started) / done * (total - done))} left"


def overview_grid(attentions) -> ThumbnailGrid:
    """attentions [layers, heads, q, k] as the all-heads thumbnail grid (pooled in torch, drawn in viz)."""
    return thumbnail_grid(pooled(attentions, thumbnail_cell(*attentions.shape[:2])))


CALLBACK_FAILURE_KEY = "_callback_failure"


def safe_callback(fn, *args):
    """`fn(*args)` as a widget callback that can't take the app down.

    Streamlit runs callbacks before the script, outside app.py's guard: an exception there
    would replace the whole page with a traceback. Here it is logged and shown as a warning by
    report_callback_failure on the run that follows."""
    def run() -> None:
        try:
            fn(*args)
        except Exception as error:
            log.exception("callback %s failed", getattr(fn, "__name__", fn))
            st.session_state[CALLBACK_FAILURE_KEY] = f"{type(error).__name__}: {error}"
    return run


def report_callback_failure(notices) -> None:
    """After a run (app.py): the warning for a callback that failed just before it."""
    failure = st.session_state.pop(CALLBACK_FAILURE_KEY, None)
    if failure is not None:
        notices.warning(f"That click couldn't be followed ({markdown_literal(failure, limit=200)}). Your text and "
                        "settings are kept.")


def bound(key: str) -> dict:
    """Widget keyword arguments that mirror the widget's value in the URL (shareable links)."""
    return dict(key=key, bind="query-params")


# --- values from a link: every bound widget's URL value is checked once the widget has drawn ---

LINK_VALUES_KEY = "_link_values"  # the URL's values when the session opened, not yet checked


def remember_link_values() -> None:
    """On a session's first run: keep the link's values (app.py calls this before the page)."""
    if LINK_VALUES_KEY not in st.session_state:
        st.session_state[LINK_VALUES_KEY] = {key: st.query_params.get_all(key) for key in st.query_params}


def _link_form(value) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


def _same_value(raw: list[str], value) -> bool:
    shown = _link_form(value)
    if len(raw) != len(shown):
        return False
    for asked, got in zip(raw, shown):
        try:
            if float(asked) == float(got):
                continue
        except ValueError:
            pass
        if asked.lower() != got.lower():
            return False
    return True


def link_value_explained(key: str) -> None:
    """A page has said itself why the link's value of `key` isn't shown: no second warning."""
    st.session_state.get(LINK_VALUES_KEY, {}).pop(key, None)


def report_link_values(notices) -> None:
    """After a run (app.py): a warning in `notices` for each link value a widget refused.

    Streamlit drops a bound widget's URL value that isn't one of its options, or is out of its
    range, without a word; a link from a colleague should say why it shows something else."""
    pending = st.session_state.get(LINK_VALUES_KEY, {})
    for key in [key for key in pending if key in st.session_state]:
        raw = pending.pop(key)
        value = st.session_state[key]
        if key not in st.query_params and not _same_value(raw, value):
            notices.warning(f"The link sets {markdown_literal(key)} to '{markdown_literal(', '.join(raw))}', "
                            f"which this page doesn't offer: showing {markdown_literal(', '.join(_link_form(value)))}.")


def _values(what: str, lo: int, hi: int) -> str:
    return f"{what} {lo} only" if lo == hi else f"{what}s {lo}-{hi}"


def int_control_state(key: str, lo: int, hi: int, what: str, scope: str = "this model") -> dict:
    """`bound(key)` for an integer control whose range depends on the model or text (layer, head).

    An out-of-range value from a link gets a message instead of silently vanishing, and a value
    left over from a larger model is clamped into the new range, saying so: `what` and `scope`
    name it ("layer", "this model").
    """
    raw = st.query_params.get(key)
    if raw is not None and key not in st.session_state:
        try:
            valid = lo <= int(raw) <= hi
        except ValueError:
            valid = False
        if not valid:
            st.warning(f"The link asks for {what} '{markdown_literal(raw)}', but {scope} has "
                       f"{_values(what, lo, hi)}: showing {lo}.")
        link_value_explained(key)
    if key in st.session_state and not lo <= st.session_state[key] <= hi:
        old, st.session_state[key] = st.session_state[key], min(max(st.session_state[key], lo), hi)
        st.info(f"{what.capitalize()} {old} is not in {scope} ({_values(what, lo, hi)}): showing "
                f"{what} {st.session_state[key]}.")
    return bound(key)


def current_spec() -> str:
    return (st.session_state.get(MODEL_KEY) or "").strip()


def current_texts() -> tuple[str, str]:
    return st.session_state.get(TEXT_KEY) or "", st.session_state.get(TEXT_B_KEY) or ""


def convert_with_progress(spec: str) -> None:
    """A GGUF model's one-time conversion (models.core.loading.convert_first) with a progress bar
    of its stages in this session's page, then a toast; nothing for any other model. Run outside
    cached_model: a cached function's elements would be replayed on every later cache hit."""
    bar = st.empty()
    name = markdown_literal(spec)

    def report(stage: str, share: float) -> None:
        bar.progress(share, text=f"First load of {name}: converting its GGUF file into a float32 copy, once "
                                 f"(under a minute on a quiet machine; later loads take seconds). Now: {stage}…")

    started = time.perf_counter()
    try:
        if convert_first(spec, settings_from_env(), report):
            st.toast(f"{name} converted in {time.perf_counter() - started:.0f} s; later loads read the copy.",
                     icon=":material/check:")
    finally:
        bar.empty()


def current_model() -> LoadedModel | None:
    """The sidebar's model, or None after showing why it can't be loaded."""
    spec = current_spec()
    try:
        with st.spinner(f"Loading {spec}…"):
            convert_with_progress(spec)
            loaded = cached_model(spec)
    except ModelLoadError as error:
        st.error(str(error))
        return None
    for notice in loaded.notices:  # what the load left out or found odd
        st.warning(notice)
    return loaded


def current_run(loaded: LoadedModel | None = None) -> tuple[LoadedModel, AttentionRun] | None:
    """The sidebar's model (`loaded`, if already loaded) run on the sidebar's text, or None after
    showing why not."""
    loaded = loaded or current_model()
    if loaded is None:
        return None
    text, text_b = current_texts()
    if not text.strip():
        st.info("Type a text in the sidebar to see its attention.")
        return None
    try:
        with st.spinner("Running the model…"), progress_bar("Running layer") as progress:
            run = cached_run(loaded.spec, text, text_b, progress)
    except RunError as error:
        st.error(str(error))
        return None
    if run.notice:  # cut to a short run: says why, where the truncation notice would blame the limit
        st.warning(run.notice)
    elif run.truncated:
        st.warning(
            f"The text has {run.n_input_tokens} tokens; the app runs at most {loaded.max_tokens} "
            f"for this model, so only the first {run.n} are shown."
        )
    return loaded, run


def lecture_mode() -> bool:
    """The sidebar's presentation switch: pages show the essentials, figures go large."""
    return bool(st.session_state.get(LECTURE_KEY, False))


def show_figure(fig, name: str, image_format: str = "png", **kwargs):
    """st.plotly_chart with the shared export settings (the camera saves `image_format`, named
    after `name`), enlarged for a projector in lecture mode."""
    if lecture_mode():
        for_projector(fig)
    return st.plotly_chart(fig, config=plotly_config(name, image_format), width="stretch", **kwargs)
