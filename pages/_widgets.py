"""Controls several pages draw: layer and head focus, the stack picker, click-to-focus, and
values left over from an option that is gone. Each returns what it read."""
import streamlit as st

from models.analysis.head_stats import HeadMetric, Metric
from pages._shared import bound, current_spec, current_texts, int_control_state, safe_callback

# What the head-statistic pickers show, and so what links hold (old links name them so: keep them).
METRIC_LABELS = {HeadMetric.ENTROPY: "entropy", HeadMetric.MEAN_DISTANCE: "mean distance",
                 HeadMetric.TO_FIRST_SPECIAL: "to first special", HeadMetric.TO_SEPARATORS: "to separators",
                 HeadMetric.TO_PUNCTUATION: "to punctuation", HeadMetric.TO_SELF: "to self",
                 HeadMetric.TO_PREVIOUS: "to previous", HeadMetric.TO_NEXT: "to next",
                 HeadMetric.TO_FIRST_TOKEN: "to first token", HeadMetric.INDUCTION: "induction"}


CHOSEN_FOR_KEY = "_chosen_for"  # control key -> (model, text, second text) its value was last shown for


def token_default(key: str, default):
    """The default to draw a token picker (a position or label in the text) with: `default`, or None
    when the model or text changed since the control was last drawn. A token chosen for the old
    text is then replaced by `default` from code, and Streamlit wants such a control drawn without
    a default of its own. A link's token stays: it was given for the text the link opens with."""
    shown_for = (current_spec(), *current_texts())
    chosen_for = st.session_state.setdefault(CHOSEN_FOR_KEY, {})
    changed = chosen_for.get(key, shown_for) != shown_for
    chosen_for[key] = shown_for
    if changed and key in st.session_state:
        st.session_state[key] = default  # not popped: a bound control would take the opening link's value back
        return None
    return default


def index_control(container, label: str, count: int, key: str, what: str, scope: str = "this model",
                  of_text: bool = False) -> int:
    """An index 0 .. count - 1 from a slider bound to the URL at `key`. With a single possible
    value it is shown as text (a slider needs two values); `what` and `scope` name the value in
    messages ("layer", "this model"); of_text: a token of the text (token_default)."""
    default = token_default(key, 0) if of_text else 0
    state = int_control_state(key, 0, count - 1, what, scope)  # first says why a link's value isn't shown
    if count > 1:
        return container.slider(label, 0, count - 1, default, **state)
    st.session_state[key] = 0  # no widget holds the value: else a link's would be explained on every run
    container.caption(f"{label}: 0, the only one")
    return 0


def focus_ui(layers: int, heads: int, layer_key: str = "layer", head_key: str = "head") -> tuple[int, int]:
    """The focused (layer, head), side by side."""
    left, right = st.columns(2)
    return (index_control(left, "Layer", layers, layer_key, "layer"),
            index_control(right, "Head", heads, head_key, "head"))


def stack_ui(names: list[str], key: str) -> str:
    """Which attention of an encoder-decoder to show; a model with one stack gets no control."""
    if len(names) == 1:
        return names[0]
    return st.radio("Attention", names, horizontal=True, **bound(key),
                    help="encoder self-attention, decoder self-attention, or decoder-to-encoder cross-attention")


def focus_head(layer_key: str, head_key: str, layer: int, head: int) -> None:
    st.session_state[layer_key], st.session_state[head_key] = int(layer), int(head)


def _focus_clicked_head(chart_key: str, layer_key: str, head_key: str) -> None:
    points = st.session_state[chart_key]["selection"]["points"]
    if points:
        focus_head(layer_key, head_key, *points[0]["customdata"][:2])


def focus_on_click(chart_key: str, layer_key: str = "layer", head_key: str = "head"):
    """on_select for a heads chart whose points carry (layer, head) first in their customdata:
    a click focuses that head."""
    return safe_callback(_focus_clicked_head, chart_key, layer_key, head_key)


def forget_unless_offered(key: str, options) -> None:
    """Drop the control's value (one, or a list) if it isn't among `options` any more: a mask of
    another text, a metric this model lacks. The control then shows its default (a token picker uses
    token_default instead)."""
    value = st.session_state.get(key)
    if any(v not in options for v in (value if isinstance(value, list) else [value])):
        st.session_state.pop(key, None)


def metric_ui(label: str, metrics: list[Metric], key: str, default: HeadMetric | None = None) -> Metric:
    """One of `metrics` (those that mean something for this text), picked by its label; `default`
    (if offered) until one is picked, else the first."""
    labels = [METRIC_LABELS[m.key] for m in metrics]
    forget_unless_offered(key, labels)  # e.g. "to separators" on a model without them
    keys = [m.key for m in metrics]
    chosen = st.selectbox(label, labels, index=keys.index(default) if default in keys else 0, **bound(key),
                          help="; ".join(f"{METRIC_LABELS[m.key]}: {m.help}" for m in metrics))
    return metrics[labels.index(chosen)]


def special_tokens_ui(key: str, container=st) -> bool:
    """The switch that lists the tokenizer's special tokens among predictions (marked); bound to `key`."""
    return container.toggle("Show special tokens", **bound(key),
                            help="[MASK], [PAD], <|endoftext|> and the tokenizer's other special tokens are left out "
                                 "of the predictions by default; the probabilities are the model's either way.")
