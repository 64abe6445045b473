"""Attention Explorer: navigation, the shared sidebar (model and text) and the page frame."""
import logging

import streamlit as st

from models import DEFAULT_MODEL, PRESETS
from pages._shared import MODEL_KEY, TEXT_B_KEY, TEXT_KEY, bound

DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
PRESET_NOTES = {DEFAULT_MODEL: "bundled, works offline"}

PAGES = [
    st.Page("pages/heads.py", title="Attention heads", icon=":material/grid_view:", default=True),
]


def sidebar_ui() -> None:
    """The model and text every page reads; their values live in the URL."""
    with st.sidebar:
        st.selectbox(
            "Model: a preset, a hub id or a local folder",
            PRESETS,
            index=0,
            accept_new_options=True,
            format_func=lambda spec: f"{spec} ({PRESET_NOTES[spec]})" if spec in PRESET_NOTES else spec,
            help="Type a hub id (e.g. bert-base-cased) or the path of a saved model or checkpoint folder.",
            **bound(MODEL_KEY),
        )
        st.text_area("Text", value=DEFAULT_TEXT, height=120, **bound(TEXT_KEY))
        st.text_area(
            "Second text (optional)",
            value="",
            height=80,
            help="Sentence B of a pair for BERT-style models; the decoder's text for T5/BART.",
            **bound(TEXT_B_KEY),
        )


st.set_page_config(page_title="Attention Explorer", page_icon=":material/visibility:", layout="wide")
page = st.navigation(PAGES)
sidebar_ui()
try:
    page.run()
except Exception as error:  # a page bug must not cost the user their text or show a traceback
    logging.getLogger("attention_explorer").exception("page %s failed", page.title)
    st.error(f"This view failed ({type(error).__name__}: {error}). Your text and settings are kept; "
             "try another setting or page.")
