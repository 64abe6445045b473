"""Attention Explorer: navigation, the shared sidebar (model and text) and the page frame."""
import pages._preload  # noqa: F401  (first: see its docstring)

# isort: split
import logging
import time

import streamlit as st

from models import DEFAULT_MODEL, PRESETS
from models.core.loading import SMOLLM2
from pages import adaptive_span, checkpoints, compare, heads, heads_at_work, scaling, sparse
from pages._shared import (
    MODEL_KEY,
    TEXT_B_KEY,
    TEXT_KEY,
    bound,
    link_value_explained,
    remember_link_values,
    report_callback_failure,
    report_link_values,
    setup_process,
)
from viz.theme import LECTURE_CSS, LECTURE_KEY

DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
PRESET_NOTES = {DEFAULT_MODEL: "bundled, works offline", SMOLLM2: "decoder LLM, works offline"}


def all_pages() -> list:
    """Every page: its module's render(), title, icon and URL path (the default page is at /)."""
    return [
        st.Page(heads.render, title="Attention heads", icon=":material/grid_view:", url_path="heads", default=True),
        st.Page(heads_at_work.render, title="Heads at work", icon=":material/power_settings_new:",
                url_path="heads_at_work"),
        st.Page(scaling.render, title="Dot-product scaling", icon=":material/functions:", url_path="scaling"),
        st.Page(sparse.render, title="Sparse attention", icon=":material/blur_on:", url_path="sparse"),
        st.Page(compare.render, title="Compare", icon=":material/compare:", url_path="compare"),
        st.Page(adaptive_span.render, title="Adaptive attention span", icon=":material/straighten:",
                url_path="adaptive_span"),
        st.Page(checkpoints.render, title="Checkpoints: masked-LM predictions", icon=":material/timeline:",
                url_path="checkpoints"),
    ]


def navigation_ui(app_pages: list) -> None:
    """The app's own page list at the top of the sidebar. Streamlit's built-in one is switched off
    (.streamlit/config.toml): on a fresh server's first run it lists every file in pages/."""
    with st.sidebar:
        for app_page in app_pages:
            st.page_link(app_page)
        st.divider()


def preset_label(spec: str) -> str:
    """What the model picker shows for a model: a preset with its note ("smollm2 (decoder LLM, works offline)")."""
    return f"{spec} ({PRESET_NOTES[spec]})" if spec in PRESET_NOTES else spec


def linked_model(raw: str) -> str:
    """The model a link names: its plain key, hub id or folder; links made while the URL held the picker's
    label ("smollm2 (decoder LLM, works offline)") name the preset too."""
    return next((spec for spec in PRESET_NOTES if raw == preset_label(spec)), raw)


def model_ui() -> None:
    """The model picker, its value in the URL as the plain key (?model=smollm2).

    Not bound with bind="query-params": Streamlit would write the formatted label into the URL. The
    link's value seeds the picker on a session's first run; every run writes the value back, and
    leaves it out at the default, as bound widgets do."""
    if MODEL_KEY not in st.session_state and MODEL_KEY in st.query_params:
        st.session_state[MODEL_KEY] = linked_model(st.query_params[MODEL_KEY])
        link_value_explained(MODEL_KEY)  # an old label link names the same model: nothing to warn about
    spec = st.selectbox("Model: a preset, a hub id or a local folder", PRESETS, accept_new_options=True,
                        format_func=preset_label, key=MODEL_KEY,
                        help="Type a hub id (e.g. bert-base-cased) or the path of a saved model or checkpoint folder.")
    linked = spec if spec and spec != DEFAULT_MODEL else None
    if st.query_params.get(MODEL_KEY) != linked:
        if linked is None:
            del st.query_params[MODEL_KEY]
        else:
            st.query_params[MODEL_KEY] = linked


def sidebar_ui() -> None:
    """The model and text every page reads; their values live in the URL."""
    with st.sidebar:
        model_ui()
        st.text_area("Text", value=DEFAULT_TEXT, height=120, **bound(TEXT_KEY))
        st.text_area(
            "Second text (optional)",
            value="",
            height=80,
            help="Sentence B of a pair for BERT-style models; the decoder's text for T5/BART.",
            **bound(TEXT_B_KEY),
        )


def lecture_mode_ui() -> bool:
    """The presentation switch (in the URL, so a lecturer can prepare links): larger type and
    figures, the sidebar folded away; pages read st.session_state[LECTURE_KEY] to show the essentials."""
    with st.sidebar:
        lecture = st.toggle("Lecture mode", help="For a projector: larger type and figures, sidebar folded, "
                            "details tucked into expanders.", **bound(LECTURE_KEY))
    if lecture:
        st.html(LECTURE_CSS)
        st.set_page_config(initial_sidebar_state="collapsed")
    return lecture


setup_process()
# an emoji favicon is drawn locally; a page's material icon as favicon would be fetched online
st.set_page_config(page_title="Attention Explorer", page_icon="🔎", layout="wide")
app_pages = all_pages()
page = st.navigation(app_pages, position="hidden")
log = logging.getLogger("attention_explorer")
started = time.perf_counter()
remember_link_values()
navigation_ui(app_pages)
sidebar_ui()
lecture_mode_ui()
notices = st.container()  # above the page: what the link asked for that it can't show, a failed click
report_callback_failure(notices)
try:
    page.run()
    report_link_values(notices)
except Exception as error:  # a page bug must not cost the user their text or show a traceback
    log.exception("page %s failed", page.title)
    st.error(f"This view failed ({type(error).__name__}: {error}). Your text and settings are kept; "
             "try another setting or page.")
# the script's own server time, every figure serialised (EXPLORER_LOG_LEVEL=DEBUG shows it)
log.debug("page %s rendered in %.1f ms", page.title, 1e3 * (time.perf_counter() - started))
