"""The classic induction probe as the Heads page's input (models.analysis.induction): BOS, then a
random token sequence, then the same sequence again. Its state lives in the URL
(?input=induction-probe, optionally &probe_length=50&probe_seed=0); the sidebar's text stays."""
import streamlit as st

from models import AttentionRun, LoadedModel, RunError, run_attention
from models.analysis.induction import induction_probe, probe_token_range
from pages._shared import bound, cached_model, int_control_state, safe_callback
from viz.labels import markdown_literal

INPUT_PARAM, PROBE = "input", "induction-probe"
LENGTH_KEY, SEED_KEY = "probe_length", "probe_seed"
FOCUS_PENDING = "_probe_focus"  # the probe was just started: focus its strongest induction head once
DEFAULT_LENGTH = 50
Probe = tuple[int, int]  # (length, seed)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_probe_run(spec: str, length: int, seed: int) -> AttentionRun:
    """A resource, as cached_run: the run's read-only arrays are shared, not copied per rerun."""
    return run_attention(cached_model(spec), probe_ids(spec, length, seed))


def probe_ids(spec: str, length: int, seed: int) -> list[int]:
    """[1 + 2 * length] the probe's token ids for the model `spec`."""
    loaded = cached_model(spec)
    low, high = probe_token_range(loaded)
    return induction_probe(loaded, length, seed, low, high)


def probe_requested() -> bool:
    """Does the link ask for the probe? Any other input value is explained once and dropped."""
    value = st.query_params.get(INPUT_PARAM)
    if value is None or value == PROBE:
        return value == PROBE
    st.warning(f"The link asks for the input '{markdown_literal(value)}', which this page doesn't know (only "
               f"'{PROBE}'): showing the text.")
    del st.query_params[INPUT_PARAM]
    return False


def focus_wanted(layer_key: str, head_key: str) -> bool:
    """Should the page focus the probe's strongest induction head? Once the probe was just started,
    or when neither a link nor this session has focused a head yet."""
    chosen = any(k in st.query_params or k in st.session_state for k in (layer_key, head_key))
    return st.session_state.pop(FOCUS_PENDING, False) or not chosen


def _start(opened: dict) -> None:
    st.query_params[INPUT_PARAM] = PROBE
    st.session_state[FOCUS_PENDING] = True
    st.session_state.update(opened)


def _stop() -> None:
    if INPUT_PARAM in st.query_params:
        del st.query_params[INPUT_PARAM]


def probe_button(container, opened: dict) -> None:
    """The one click that runs the page on the probe; `opened` are session values to set with it
    (the statistics section's open state)."""
    container.button("Run the induction probe", icon=":material/repeat:", on_click=safe_callback(_start, opened),
                     help="Show this model on the classic induction probe instead of your text: a random token "
                          "sequence repeated twice after BOS, where induction heads light up. Your text stays in "
                          "the sidebar.")


def probe_ui(loaded: LoadedModel) -> Probe:
    """The probe's banner with its length and seed (bound to the URL) and the way back to the text."""
    longest = (loaded.max_tokens - 1) // 2
    low, high = probe_token_range(loaded)
    banner = st.empty()  # above the controls, written once they have been read
    left, middle, right = st.columns([1, 1, 1], vertical_alignment="bottom")
    length = left.number_input("Random tokens (each copy)", 2, longest, min(DEFAULT_LENGTH, longest),
                               **int_control_state(LENGTH_KEY, 2, longest, "probe length", "this model"))
    seed = middle.number_input("Seed", 0, 2**31 - 1, 0, **bound(SEED_KEY))
    right.button("Back to my text", icon=":material/undo:", on_click=safe_callback(_stop))
    banner.info(f"**Showing the induction probe, not your text**: BOS, then {length} random tokens (ids {low:,}–"
                f"{high - 1:,}, seed {seed}), then the same {length} again. On the second copy an induction head "
                f"attends to the token that followed the current token the first time: a stripe {length - 1} "
                "tokens left of the diagonal (Olsson et al. 2022). Your text is kept in the sidebar.")
    return int(length), int(seed)


def probe_run(loaded: LoadedModel, probe: Probe) -> AttentionRun | None:
    """The model's run on the probe, or None after saying why not."""
    try:
        with st.spinner("Running the model on the induction probe…"):
            return cached_probe_run(loaded.spec, *probe)
    except RunError as error:
        st.error(str(error))
        return None
