"""Controls with a single possible value, on every page: a model with one layer of one head and
a one-token text draw (Streamlit's slider refuses min == max, so such a control is text), and a
focus that a smaller model doesn't have is clamped with a message."""
import pytest

from tests.app.helpers import array, figure, messages, open_app, set_state
from tests.tiny_models import save_tiny_1x1

ONLY = ["Layer: 0, the only one", "Head: 0, the only one"]
ONE_TOKEN = "a"  # one token for the tiny GPT-2's byte-level BPE (and no special tokens around it)


@pytest.fixture(scope="module")
def series_1x1(tmp_path_factory):
    """A checkpoint series whose checkpoints have one layer of one head."""
    folder = tmp_path_factory.mktemp("series-1x1")
    for step in (10, 20):
        save_tiny_1x1(folder / f"checkpoint-{step}")
    return folder


def _healthy(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _single(at) -> list[str]:
    """The controls shown as text because they have one possible value."""
    return [c.value for c in at.caption if c.value.endswith("the only one")]


def test_heads_page_with_one_layer_of_one_head(tiny_1x1):
    at = open_app(None, model=str(tiny_1x1), statistics="true", layer="3")
    _healthy(at)
    assert _single(at) == ONLY
    assert "asks for layer '3', but this model has layer 0 only" in messages(at)
    assert figure(at, "Layer 0, head 0 (self-attention)") and figure(at, "Entropy (nats) of every head")
    for changes in (dict(aggregation="layer max"), dict(aggregation="rollout"), dict(metric="to self"),
                    dict(bertviz="head view"), dict(bertviz="model view"), dict(bertviz="neuron view")):
        set_state(at, **changes)
        _healthy(at)
        assert _single(at) == ONLY, changes
    assert figure(at, "Attention rollout up to layer 0")
    set_state(at)  # a rerun (set_state re-offers the typed-in model to AppTest)
    assert "asks for layer" not in messages(at)  # said once


def test_heads_page_with_a_one_token_text(tiny_models):
    at = open_app(None, model=str(tiny_models["gpt2"]), text=ONE_TOKEN, statistics="true", aggregation="rollout")
    _healthy(at)
    assert array(figure(at, "Attention rollout up to layer 0")["data"][0]["z"]).size == 1
    set_state(at, aggregation="one head", bertviz="head view")
    _healthy(at)
    assert figure(at, "Layer 0, head 0 (self-attention)")


@pytest.mark.parametrize("text", [None, ONE_TOKEN])
def test_scaling_page(tiny_models, tiny_1x1, text):
    if text is None:
        at = open_app("pages/scaling.py", model=str(tiny_1x1))
        assert _single(at) == ONLY
    else:
        at = open_app("pages/scaling.py", model=str(tiny_models["gpt2"]), text=text)
        assert _single(at) == ["Query token (position) for the neuron view: 0, the only one"]
    _healthy(at)
    assert figure(at, f"{at.session_state['model']}, self-attention, layer 0, head 0: scores")


@pytest.mark.parametrize("text", [None, ONE_TOKEN])
def test_sparse_page_live_model(tiny_models, tiny_1x1, text):
    model = str(tiny_1x1) if text is None else str(tiny_models["gpt2"])
    at = open_app("pages/sparse.py", view="Live model", model=model, **({"text": text} if text else {}))
    _healthy(at)
    assert _single(at) == (ONLY if text is None else [])
    assert figure(at, "Enforced: layer 0, head 0")


@pytest.mark.parametrize("text", [None, ONE_TOKEN])
def test_adaptive_span_page(tiny_models, tiny_1x1, text):
    model = str(tiny_1x1) if text is None else str(tiny_models["gpt2"])
    at = open_app("pages/adaptive_span.py", model=model, **({"text": text} if text else {}))
    _healthy(at)
    assert _single(at) == (ONLY if text is None else [])
    assert figure(at, "Before: layer 0, head 0") and figure(at, "After the span mask")


@pytest.mark.parametrize("text", [None, ONE_TOKEN])
def test_compare_page(tiny_models, tiny_1x1, text):
    model = str(tiny_1x1) if text is None else str(tiny_models["gpt2"])
    at = open_app("pages/compare.py", model_a=model, model_b=model, **({"text": text} if text else {}))
    _healthy(at)
    assert _single(at) == (["Layer of A: 0, the only one", "Head of A: 0, the only one"] if text is None else [])
    assert figure(at, "A (") and figure(at, "JS divergence of A&#x27;s and B&#x27;s same head")


def test_compare_page_follows_a_series_of_one_layer_of_one_head(series_1x1):
    at = open_app("pages/compare.py", compare_view="Checkpoint series", series=str(series_1x1))
    _healthy(at)
    assert figure(at, "Entropy (nats) of each head over training steps")
    assert figure(at, "JS divergence from the final checkpoint")


def test_checkpoints_page_with_checkpoints_of_one_layer_of_one_head(series_1x1):
    at = open_app("pages/checkpoints.py", ckpt_source="folder", ckpt_folder=str(series_1x1))
    _healthy(at)
    assert _single(at) == ONLY
    assert figure(at, "step 10: layer 0, head 0") and figure(at, "step 20: layer 0, head 0")


def test_switching_to_smaller_models_clamps_the_focus_and_says_so(tiny_models, tiny_1x1):
    at = open_app(None, layer="5", head="11")
    assert figure(at, "Layer 5, head 11 (self-attention)")
    set_state(at, model=str(tiny_models["bert"]))  # 2 layers x 4 heads
    _healthy(at)
    said = messages(at)
    assert "Layer 5 is not in this model (layers 0-1): showing layer 1." in said
    assert "Head 11 is not in this model (heads 0-3): showing head 3." in said
    assert figure(at, "Layer 1, head 3 (self-attention)")
    set_state(at, model=str(tiny_1x1))
    _healthy(at)
    assert "Layer 1 is not in this model (layer 0 only): showing layer 0." in messages(at)
    assert _single(at) == ONLY and figure(at, "Layer 0, head 0 (self-attention)")
    set_state(at, model="minilm")  # sliders again
    _healthy(at)
    assert not _single(at) and "is not in this model" not in messages(at)
    assert at.slider(key="layer").value == 0 and figure(at, "Layer 0, head 0 (self-attention)")


def test_the_scaling_pages_focus_is_clamped_too(tiny_1x1):
    at = open_app("pages/scaling.py", scores_layer="5", scores_head="11", neuron_query="9")
    assert figure(at, "minilm, self-attention, layer 5, head 11: scores")
    set_state(at, model=str(tiny_1x1), text="Birds fly.")  # 5 tokens with [CLS] and [SEP]
    _healthy(at)
    said = messages(at)
    assert "Layer 5 is not in this model (layer 0 only): showing layer 0." in said
    # a token of the old text is dropped for the new text's default, not clamped with a message
    assert "Query token" not in said and at.slider(key="neuron_query").value == 0
    assert _single(at) == ONLY
