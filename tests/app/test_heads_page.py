"""The Heads page through AppTest, starting from app.py as the browser does."""
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from tests.app.helpers import array, figure, messages, open_app
from tests.helpers import ODD_TEXTS

PAGE = None  # the default page: app.py opens on it


def _focused(at):
    return figure(at, "Layer ")


def test_renders_the_default_model_offline():
    at = open_app(PAGE)
    assert not at.exception and not at.error
    assert _focused(at)["layout"]["title"]["text"] == "Layer 0, head 0 (self-attention)"
    assert figure(at, "All heads")["data"][0]["type"] == "image"


def test_changing_the_text_changes_the_figure():
    at = open_app(PAGE)
    before = _focused(at)
    at.text_area(key="text").set_value("Birds fly south in winter.").run()
    after = _focused(at)
    assert after["data"][0]["y"] == ["0 [CLS]", "1 birds", "2 fly", "3 south", "4 in", "5 winter", "6 .", "7 [SEP]"]
    assert array(after["data"][0]["z"]).size != array(before["data"][0]["z"]).size


def test_layer_and_head_controls_focus_another_head():
    at = open_app(PAGE)
    z00 = array(_focused(at)["data"][0]["z"])
    at.slider(key="layer").set_value(3).run()
    at.slider(key="head").set_value(7).run()
    assert _focused(at)["layout"]["title"]["text"] == "Layer 3, head 7 (self-attention)"
    assert not np.allclose(array(_focused(at)["data"][0]["z"]), z00)


def test_link_state_is_read_and_out_of_range_values_are_explained():
    at = open_app(PAGE, text="Links carry state.", head="4", layer="99")
    assert at.session_state["text"] == "Links carry state."
    assert "asks for layer '99'" in messages(at)
    assert _focused(at)["layout"]["title"]["text"] == "Layer 0, head 4 (self-attention)"


def test_a_model_that_cannot_load_keeps_the_text():
    at = open_app(PAGE, model="/no/such/model", text="My carefully typed text.")
    assert "does not exist" in messages(at)
    assert at.session_state["text"] == "My carefully typed text."
    assert not at.exception


def test_empty_text_gets_a_prompt_not_an_error():
    at = open_app(PAGE)
    at.text_area(key="text").set_value("   ").run()
    assert "Type a text" in messages(at) and not at.error and not at.exception


def test_decoder_shows_the_masked_future(tiny_models):
    at = open_app(PAGE, model=str(tiny_models["gpt2"]))
    assert not at.error
    z = array(_focused(at)["data"][0]["z"])
    assert np.isnan(z[0, 1]) and not np.isnan(z[1, 0])
    assert any("masked future" in c.value for c in at.caption)


def test_encoder_decoder_offers_cross_attention(tiny_models):
    # through the link: AppTest can't re-submit a selectbox holding a typed-in option
    at = open_app(PAGE, model=str(tiny_models["t5"]), text_b="Short target.", stack="cross")
    assert at.radio(key="stack").options == ["encoder", "decoder", "cross"]
    focused = _focused(at)
    assert focused["layout"]["title"]["text"].endswith("(cross)")
    assert focused["data"][0]["y"][:3] == ["0 [PAD]", "1 [CLS]", "2 short"]  # decoder queries


def test_a_huge_text_gets_a_message_and_stays_in_the_box():
    at = open_app(PAGE)
    huge = "word " * 40_000
    at.text_area(key="text").set_value(huge).run()
    assert "200,000 characters; this server runs at most 100,000" in messages(at)
    assert at.session_state["text"] == huge and not at.exception


def test_folders_outside_the_allowed_ones_are_refused(tiny_models, monkeypatch):
    monkeypatch.setenv("EXPLORER_ALLOWED_FOLDERS", "/srv/nothing-here")
    at = open_app(PAGE, model=str(tiny_models["roberta"]))
    assert "doesn't load models from" in messages(at)


@pytest.mark.parametrize("text", ODD_TEXTS.values(), ids=ODD_TEXTS.keys())
def test_odd_texts_are_drawn_and_kept(text):
    at = open_app(PAGE, text=text)
    assert not at.exception and not at.error
    assert at.session_state["text"] == text
    assert _focused(at)["data"][0]["type"] == "heatmap"


def test_a_failed_load_does_not_poison_the_cache(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "half-written")
    weights = folder / "model.safetensors"
    complete = weights.read_bytes()
    weights.write_bytes(complete[:100])
    at = open_app(PAGE, model=str(folder))
    assert "Couldn't load the model" in messages(at)
    weights.write_bytes(complete)  # the copy finished; the next visit (the cache is per process) tries again
    at = open_app(PAGE, model=str(folder))
    assert not at.error and _focused(at)["data"][0]["type"] == "heatmap"


def test_a_load_that_left_out_the_output_head_says_so_and_shows_the_attention(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "headless")
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("cls.")}, folder / "model.safetensors",
              metadata={"format": "pt"})
    at = open_app(PAGE, model=str(folder))
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [
        "The weights have no output head (cls.predictions.bias, cls.predictions.decoder.bias, "
        "cls.predictions.transform.LayerNorm.bias, ...), so this model makes no predictions here; its attention "
        "is complete."]
    assert _focused(at)["data"][0]["type"] == "heatmap"


# --- the text view's token belongs to the text it was chosen for ---

def _text_token(at) -> int:
    return at.number_input(key="text_token").value


def test_a_new_text_opens_the_text_view_on_its_last_token():
    at = open_app(PAGE, text="Birds fly south in winter.")  # [CLS] birds fly south in winter . [SEP]
    assert _text_token(at) == 7
    at.text_area(key="text").set_value("Hi").run()  # [CLS] hi [SEP]: 7 is no token of it
    assert _text_token(at) == 2 and "is not in this text" not in messages(at)
    at.text_area(key="text").set_value("Birds fly south in winter, and they fly back north in spring.").run()
    assert _text_token(at) == 15  # not the 2 left over from "Hi"
    assert not at.exception


def test_a_token_the_user_chose_is_dropped_with_its_text():
    at = open_app(PAGE, text="Birds fly south in winter.")
    at.number_input(key="text_token").set_value(3).run()
    assert "Where “south” (3) looks" in " ".join(h.proto.body for h in at.get("html"))
    at.text_area(key="text").set_value("Birds fly south in winter, and they fly back north in spring.").run()
    assert _text_token(at) == 15


def test_a_links_token_stays_for_the_links_text_only():
    at = open_app(PAGE, text="Birds fly south in winter.", text_token="2")
    assert _text_token(at) == 2
    at.slider(key="layer").set_value(3).run()  # another control: the link's token stays
    assert _text_token(at) == 2
    at.text_area(key="text").set_value("Birds fly back north in spring.").run()
    assert _text_token(at) == 8
