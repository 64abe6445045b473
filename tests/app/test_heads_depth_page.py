"""The Heads page in depth through AppTest: every control, the URL, lecture mode, bertviz, exports."""
import json

import numpy as np
import pytest

from models import run_attention
from models.analysis.aggregation import mean_over_all, rollout_layers
from models.analysis.head_stats import HeadMetric, head_statistics
from tests.app.helpers import array, figure, figures, messages, open_app, set_state
from tests.tiny_models import save_tiny_gemma_style

TEXT, PAIR = "Tokenization is unbelievable, she said.", "It was late."


@pytest.fixture(scope="module")
def reference(default_model):
    """The bundled model's own run of TEXT, to compare the page's numbers with."""
    return run_attention(default_model, TEXT)


def _focused(at) -> dict:
    return figures(at)[1]  # the page draws the overview, then the focused view


def _srcdoc(at) -> str:
    frames = at.get("iframe")
    assert len(frames) == 1, "one bertviz view is shown"
    return frames[0].proto.srcdoc


def test_every_aggregation_shows_the_models_numbers(reference):
    at = open_app(None, text=TEXT, layer="2", head="5")
    expected = {
        "one head": ("Layer 2, head 5 (self-attention)", reference.attentions[2, 5]),
        "layer mean": ("Layer 2, mean of its 12 heads (self-attention)", reference.attentions[2].mean(0)),
        "layer max": ("Layer 2, max over its 12 heads (self-attention)", reference.attentions[2].max(0)),
        "mean of all": ("Mean of all 6 × 12 heads (self-attention)", mean_over_all(reference.attentions)),
        "rollout": ("Attention rollout up to layer 2 (self-attention)", rollout_layers(reference.attentions)[2]),
    }
    for how, (title, matrix) in expected.items():
        set_state(at, aggregation=how)
        assert not at.exception and not at.error, how
        focused = _focused(at)
        assert focused["layout"]["title"]["text"] == title
        np.testing.assert_allclose(array(focused["data"][0]["z"]), matrix, rtol=1e-5, atol=1e-7, err_msg=how)


def test_rollout_bars_show_the_picked_token(reference):
    at = open_app(None, text=TEXT, aggregation="rollout", layer="5")
    assert figure(at, "What “[CLS]” (position 0)")
    label = at.selectbox(key="rollout_token").options[3]
    at.selectbox(key="rollout_token").set_value(label).run()
    bars = figure(at, "What “is” (position 3)")  # [CLS] token ##ization is
    np.testing.assert_allclose(array(bars["data"][0]["y"]), rollout_layers(reference.attentions)[5, 3], rtol=1e-5)


def test_words_switch_merges_pieces_in_the_focused_view_and_the_overview():
    at = open_app(None, text=TEXT)
    tokens = _focused(at)["data"][0]["y"]
    overview = figure(at, "All heads")["data"][0]["source"]
    assert tokens[1:3] == ["1 token", "2 ##ization"]
    at.toggle(key="words").set_value(True).run()
    focused = _focused(at)
    assert focused["layout"]["title"]["text"] == "Layer 0, head 0 (self-attention): words"
    assert focused["data"][0]["y"][1] == "1 tokenization" and len(focused["data"][0]["y"]) == len(tokens) - 1
    np.testing.assert_allclose(array(focused["data"][0]["z"]).sum(-1), 1, rtol=1e-5)
    assert figure(at, "All heads")["data"][0]["source"] != overview  # thumbnails of words


def test_sentence_pair_filter_cuts_the_block():
    at = open_app(None, text="The cat sat.")
    assert "pair" not in at.session_state  # no sentence B: no filter offered
    at = open_app(None, text="The cat sat.", text_b=PAIR)
    set_state(at, pair="A->B")
    focused = _focused(at)
    assert focused["data"][0]["y"] == ["0 [CLS]", "1 the", "2 cat", "3 sat", "4 .", "5 [SEP]"]
    assert focused["data"][0]["x"] == ["0 it", "1 was", "2 late", "3 .", "4 [SEP]"]
    assert focused["layout"]["title"]["text"].endswith(": A→B")
    set_state(at, pair="B->B", words=True)
    assert _focused(at)["data"][0]["y"] == ["0 it", "1 was", "2 late", "3 .", "4 [SEP]"]


def test_statistics_are_computed_only_once_their_section_is_opened(reference):
    at = open_app(None, text=TEXT)
    assert "metric" not in at.session_state and not at.dataframe  # folded: nothing computed, nothing sent
    set_state(at, statistics=True)
    assert at.session_state["metric"] == "entropy" and len(at.dataframe) == 1


def test_metric_picker_heatmap_and_table(reference):
    at = open_app(None, text=TEXT, statistics="true")
    stats = head_statistics(reference.attentions, reference.tokens, reference.special_mask)
    np.testing.assert_allclose(array(figure(at, "Entropy (nats) of every head")["data"][0]["z"]),
                               stats.values[HeadMetric.ENTROPY], rtol=1e-5)
    at.selectbox(key="metric").set_value("to previous").run()
    heat = figure(at, "To previous (share) of every head")
    np.testing.assert_allclose(array(heat["data"][0]["z"]), stats.values[HeadMetric.TO_PREVIOUS], rtol=1e-5)
    assert array(heat["data"][1]["customdata"])[29].tolist() == [2, 5]  # the clickable point of layer 2, head 5
    table = at.dataframe[0].value
    assert len(table) == 72 and list(table.columns[:4]) == ["layer", "head", "entropy (nats)", "mean distance (tokens)"]
    np.testing.assert_allclose(table["to previous"], stats.values[HeadMetric.TO_PREVIOUS].ravel(), atol=1e-4)


def test_every_control_lives_in_the_url():
    query = dict(text=TEXT, text_b=PAIR, aggregation="layer max", words="true", pair="B->A", metric="to self",
                 image_format="SVG", bertviz="model view", bertviz_tokens="16", bertviz_one_layer="true",
                 layer="3", lecture="true", statistics="true")
    at = open_app(None, **query)
    assert not at.exception and not at.error
    state = {key: at.session_state[key] for key in query if key not in ("text", "text_b")}
    assert state == dict(aggregation="layer max", words=True, pair="B->A", metric="to self", image_format="SVG",
                         bertviz="model view", bertviz_tokens=16, bertviz_one_layer=True, layer=3, lecture=True,
                         statistics=True)
    assert _focused(at)["layout"]["title"]["text"] == "Layer 3, max over its 12 heads (self-attention): words, B→A"
    configs = [json.loads(chart.proto.config) for chart in at.get("plotly_chart")]
    assert {c["toImageButtonOptions"]["format"] for c in configs} == {"svg"}
    assert "attention_minilm_self-attention_layer-max_L3" in [c["toImageButtonOptions"]["filename"] for c in configs]
    assert "tokens, layer 3 only" in " ".join(c.value for c in at.caption)


def test_downloads_are_offered():
    at = open_app(None, text=TEXT)
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels == ["Run as NPZ (6 layers × 12 heads, tokens)", "This matrix as CSV"]


def test_bertviz_views_are_drawn_from_the_run_with_caps(reference):
    at = open_app(None, text=TEXT, bertviz_tokens="8")
    assert not at.get("iframe")  # off until asked for: it is megabytes of HTML
    for view, marker in (("head view", "const params ="), ("model view", "const params ="),
                         ("neuron view", "window.bertviz_params =")):
        set_state(at, bertviz=view)
        html = _srcdoc(at)
        params = json.JSONDecoder().raw_decode(html[html.index(marker) + len(marker):].lstrip())[0]
        attention = params["attention"][0] if isinstance(params["attention"], list) else params["attention"]["all"]
        assert attention["left_text"] == reference.tokens[:8], view
        np.testing.assert_allclose(attention["attn"][1][2], reference.attentions[1, 2, :8, :8], atol=5e-4)
        assert "first 8 of" in " ".join(c.value for c in at.caption)


def test_lecture_mode_folds_the_details_and_enlarges_figures():
    at = open_app(None, text=TEXT)
    normal = _focused(at)["layout"]
    statistics = "Head statistics: entropy, distance and where each head looks"
    assert [e.label for e in at.expander] == [statistics] and at.toggle(key="lecture").value is False
    at.toggle(key="lecture").set_value(True).run()
    assert [e.label for e in at.expander] == ["Export", statistics, "bertviz, offline"]
    lecture = _focused(at)["layout"]
    assert lecture["font"]["size"] > normal["font"]["size"] and lecture["height"] > normal["height"]


def test_512_tokens_every_view(default_model):
    long_text = " ".join([TEXT] * 70)
    at = open_app(None, text=long_text, statistics="true")
    assert "only the first 512 are shown" in messages(at)
    for changes in (dict(aggregation="rollout"), dict(words=True), dict(aggregation="mean of all"),
                    dict(metric="mean distance"), dict(bertviz="head view")):
        set_state(at, **changes)
        assert not at.exception and not at.error, changes
    assert len(_focused(at)["data"][0]["y"]) < 512  # words


def test_decoder_statistics_and_neuron_view(tiny_models):
    # typed-in models only through the link: AppTest can't re-submit a selectbox holding a typed-in option
    gpt2 = dict(model=str(tiny_models["gpt2"]), text="Hello world, hello tokens!")
    at = open_app(None, **gpt2, bertviz="neuron view", statistics="true")
    assert not at.error and not at.exception
    assert "to first special" not in at.selectbox(key="metric").options  # GPT-2 adds no special tokens
    assert "window.bertviz_params" in _srcdoc(at)
    at = open_app(None, **gpt2, aggregation="rollout")
    assert _focused(at)["layout"]["title"]["text"].startswith("Attention rollout") and not at.error


def test_encoder_decoder_cross_attention_views(tiny_models):
    t5 = dict(model=str(tiny_models["t5"]), text="The cat sat.", text_b="Le chat.")
    at = open_app(None, **t5, stack="cross", bertviz="neuron view", statistics="true")
    assert "rollout" not in at.segmented_control(key="aggregation").options
    assert "Head statistics are for self-attention" in messages(at)
    assert "No neuron view for this model" in messages(at) and not at.error
    at = open_app(None, **t5, stack="cross", bertviz="head view", words="true")
    assert '<option value="2">Cross</option>' in _srcdoc(at) and not at.error


def test_bad_link_values_fall_back_without_breaking_the_page():
    at = open_app(None, text=TEXT, text_b=PAIR, statistics="true", aggregation="median", metric="beauty", pair="A->C", bertviz="3d",
                  bertviz_tokens="999", rollout_token="zzz", image_format="gif", words="maybe")
    assert not at.exception and not at.error
    assert {key: at.session_state[key] for key in ("aggregation", "metric", "pair", "bertviz", "bertviz_tokens",
                                                    "image_format", "words")} == dict(
        aggregation="one head", metric="entropy", pair="all", bertviz="off", bertviz_tokens=40, image_format="PNG",
        words=False)
    assert _focused(at)["layout"]["title"]["text"] == "Layer 0, head 0 (self-attention)"


def test_byte_level_labels_show_the_texts_characters(tiny_models):
    gpt2 = dict(model=str(tiny_models["gpt2"]), text="Seán likes 😀 a lot")
    at = open_app(None, **gpt2, words="true", bertviz="head view")
    assert not at.error and not at.exception
    assert _focused(at)["data"][0]["y"] == ["0 Seán", "1 likes", "2 😀", "3 a", "4 lot"]
    assert "Seán" in _srcdoc(at) and "😀" in _srcdoc(at) and "Ã" not in _srcdoc(at)
    at = open_app(None, **gpt2)  # tokens: a piece holding part of a character's bytes shows as �
    labels = _focused(at)["data"][0]["y"]
    assert labels[:5] == ["0 S", "1 e", "2 �", "3 �", "4 n"] and not any("Ã" in label for label in labels)


def test_words_of_a_tokenizer_whose_word_ids_join_the_sentence(tmp_path):
    folder = save_tiny_gemma_style(tmp_path / "gemma-style")
    at = open_app(None, model=str(folder), text="I love my cats", words="true")
    assert not at.error and not at.exception
    assert _focused(at)["data"][0]["y"] == ["0 &lt;bos&gt;", "1 I", "2 love", "3 my", "4 cats"]  # escaped for plotly
