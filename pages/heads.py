"""Attention heads: every head of every layer at a glance, and one head in detail."""
import streamlit as st

from models import attention_stacks
from pages._shared import bound, cached_run, current_run, current_spec, current_texts, int_control_state, show_figure
from viz.heatmap import attention_heatmap
from viz.overview import ThumbnailGrid, heads_overview, thumbnail_grid

LAYER_KEY, HEAD_KEY, STACK_KEY, OVERVIEW_KEY = "layer", "head", "stack", "overview"


@st.cache_data(max_entries=16, show_spinner=False)
def cached_grid(spec: str, text: str, text_b: str, stack: str) -> ThumbnailGrid:
    return thumbnail_grid(attention_stacks(cached_run(spec, text, text_b))[stack].attentions)


def _focus_clicked_head() -> None:
    points = st.session_state[OVERVIEW_KEY]["selection"]["points"]
    if points:
        st.session_state[LAYER_KEY], st.session_state[HEAD_KEY] = points[0]["customdata"]


def stack_ui(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return st.radio("Attention", names, horizontal=True, **bound(STACK_KEY),
                    help="encoder self-attention, decoder self-attention, or decoder-to-encoder cross-attention")


def focus_ui(layers: int, heads: int) -> tuple[int, int]:
    left, right = st.columns(2)
    layer = left.slider("Layer", 0, layers - 1, 0, **int_control_state(LAYER_KEY, 0, layers - 1, "layer"))
    head = right.slider("Head", 0, heads - 1, 0, **int_control_state(HEAD_KEY, 0, heads - 1, "head"))
    return layer, head


st.title("Attention heads")
result = current_run()
if result is not None:
    loaded, run = result
    stacks = attention_stacks(run)
    stack = stacks[stack_ui(list(stacks))]
    st.caption(f"{loaded.spec}: {loaded.kind} ({loaded.config.model_type}), {run.num_layers} layers × "
               f"{run.num_heads} heads, {len(stack.query_tokens)} × {len(stack.key_tokens)} tokens.")
    layer, head = focus_ui(run.num_layers, run.num_heads)
    text, text_b = current_texts()
    grid = cached_grid(current_spec(), text, text_b, stack.name)
    overview = heads_overview(grid, (layer, head), f"All heads ({stack.name}): a row per layer, a column per head (h0, h1, …); click one to focus it")
    show_figure(overview, f"heads_{loaded.spec}_{stack.name}", key=OVERVIEW_KEY, on_select=_focus_clicked_head,
                selection_mode="points")
    st.caption("Each thumbnail is one head's token × token attention, scaled to its own maximum.")
    focused = attention_heatmap(
        stack.attentions[layer, head], stack.query_tokens, stack.key_tokens,
        title=f"Layer {layer}, head {head} ({stack.name})", causal=stack.causal,
    )
    show_figure(focused, f"attention_{loaded.spec}_{stack.name}_L{layer}_H{head}")
    if stack.causal:
        st.caption("Grey cells are the masked future: a causal model's query never sees later tokens.")
