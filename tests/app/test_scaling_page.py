"""The Dot-product scaling page through AppTest: its controls, links, and models that scale differently."""
import numpy as np
import pytest

from models.scaling.random_vectors import classic_demonstration
from tests.app.helpers import array, figure, messages, open_app, set_state
from tests.tiny_models import save_tiny_gemma2

PAGE = "pages/scaling.py"
FAST = dict(samples="100")  # keep the sampling quick; every other control at its default


def _metrics(at) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def _markdown(at) -> str:
    return " | ".join(str(m.value) for m in at.markdown)


def _histogram_x(at, title_start: str) -> np.ndarray:
    return array(figure(at, title_start)["data"][0]["x"])


def test_renders_every_section_for_the_bundled_model():
    at = open_app(PAGE, **FAST)
    assert not at.exception and not at.error
    for title in ("100 random pairs q, k with d = 64", "Mean |q·k| grows", "One random query against 16",
                  "softmax(q·k / t) for one query, d = 64", "minilm, self-attention, layer 0, head 0",
                  "Neuron view: query 0 [CLS], layer 0, head 0"):
        assert figure(at, title)
    assert "d_head = 32: the model multiplies q·k by 1/√32 = 0.1768" in _markdown(at)
    assert any("reproduces this model's attention weights" in c.value for c in at.caption)


def test_the_classic_numbers_are_on_the_page_and_follow_the_seed():
    at = open_app(PAGE, **FAST)
    expected = classic_demonstration(0).sampled
    assert _metrics(at) == {"mean |q·k| at d = 10": f"{expected[0]:.2f}", "mean |q·k| at d = 10000": f"{expected[1]:.2f}"}
    at.number_input(key="seed").set_value(4).run()
    assert _metrics(at)["mean |q·k| at d = 10000"] == f"{classic_demonstration(4).sampled[1]:.2f}"


def test_dimension_and_samples_controls_redraw_the_histograms():
    at = open_app(PAGE, **FAST)
    before = _histogram_x(at, "100 random pairs")
    at.select_slider(key="d").set_value(4096).run()
    after = _histogram_x(at, "100 random pairs q, k with d = 4096")
    assert after.size == 100 and after.std() > 5 * before.std()  # sqrt(4096 / 64) = 8 times wider
    at.select_slider(key="samples").set_value(200).run()
    assert _histogram_x(at, "200 random pairs").size == 200


def test_keys_and_temperature_controls():
    at = open_app(PAGE, **FAST)
    at.select_slider(key="keys").set_value(64).run()
    assert figure(at, "One random query against 64 random keys")
    at.select_slider(key="temperature").set_value(1000).run()
    weights = array(figure(at, "softmax(q·k / t)")["data"][0]["y"])
    assert weights.size == 64 and weights.max() < 0.05  # a hot softmax is nearly uniform


def test_link_sets_every_control():
    at = open_app(PAGE, d="10000", samples="100", seed="2", keys="8", temperature="0.1", scores_layer="3",
                  scores_head="7", neuron_query="2")
    assert at.select_slider(key="d").value == 10000 and at.number_input(key="seed").value == 2
    assert at.select_slider(key="keys").value == 8 and at.select_slider(key="temperature").value == 0.1
    assert figure(at, "minilm, self-attention, layer 3, head 7")
    assert figure(at, "Neuron view: query 2 animal, layer 3, head 7")


def test_out_of_range_links_are_explained():
    at = open_app(PAGE, **FAST, scores_layer="40", neuron_query="999")
    assert "asks for layer '40'" in messages(at) and "asks for query token '999'" in messages(at)
    assert figure(at, "minilm, self-attention, layer 0, head 0")


def test_t5_is_said_not_to_scale_and_shows_its_position_bias(tiny_models):
    at = open_app(PAGE, **FAST, model=str(tiny_models["t5"]), text_b="Short target.")
    assert not at.error and not at.exception
    assert at.radio(key="scores_stack").options == ["encoder", "decoder", "cross"]
    assert "this model does not scale" in _markdown(at) and "learned position bias" in _markdown(at)
    neuron = figure(at, "Neuron view")
    assert any(a["text"] == "+ bias" for a in neuron["layout"]["annotations"])


def test_t5_cross_attention_pairs_decoder_queries_with_encoder_keys(tiny_models):
    at = open_app(PAGE, **FAST, model=str(tiny_models["t5"]), text_b="Short target.", scores_stack="cross")
    neuron = figure(at, "Neuron view: query 0 [PAD], layer 0, head 0 (cross)")
    assert neuron["data"][-1]["y"][:2] == ["0 [CLS]", "1 the"]  # keys: the encoder's tokens
    assert not any(a["text"] == "+ bias" for a in neuron["layout"]["annotations"])


def test_a_decoder_shows_masked_keys(tiny_models):
    at = open_app(PAGE, **FAST, model=str(tiny_models["gpt2"]), neuron_query="1")
    bars = figure(at, "Neuron view")["data"][-1]
    assert array(bars["x"])[2:].sum() == 0  # query 1 sees keys 0 and 1 only


def test_a_model_whose_softmax_differs_gets_a_warning(tmp_path):
    at = open_app(PAGE, **FAST, model=str(save_tiny_gemma2(tmp_path / "gemma2")))
    assert "this model scales by 0.25" in _markdown(at)
    assert "differs from this model's attention weights" in messages(at)
    assert not at.exception


def test_a_model_that_cannot_load_keeps_the_random_vector_sections():
    at = open_app(PAGE, **FAST, model="/no/such/model", text="Kept text.")
    assert "does not exist" in messages(at)
    assert figure(at, "100 random pairs") and not at.exception
    assert at.session_state["text"] == "Kept text."


@pytest.mark.parametrize("text", ["   ", "word " * 600])
def test_empty_or_long_text(text):
    at = set_state(open_app(PAGE, **FAST), text=text)
    assert not at.exception
    assert ("Type a text" in messages(at)) if not text.strip() else ("only the first" in messages(at))


def test_lecture_mode_enlarges_the_figures():
    def font_size(at) -> float:
        return figure(at, "100 random pairs")["layout"]["font"]["size"]

    assert font_size(open_app(PAGE, **FAST, lecture="true")) > font_size(open_app(PAGE, **FAST))


def test_the_neuron_views_query_token_starts_over_with_a_new_text():
    at = open_app(PAGE, **FAST, text="The animal did not cross the street.")
    at.slider(key="neuron_query").set_value(5).run()
    at.text_area(key="text").set_value("The street was wide.").run()
    assert at.slider(key="neuron_query").value == 0
