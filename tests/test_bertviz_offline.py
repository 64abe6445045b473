"""viz.bertviz_offline against bertviz's own HTML, and models.neuron against the model's attentions.

(That the pages draw with no network is proven in the browser: tests/e2e/test_heads_depth_e2e.py.)
"""
import json
import re

import numpy as np
import pytest
import torch
from bertviz import head_view, model_view

from models import load_model, run_attention
from models.analysis.neuron import NeuronViewUnsupported, neuron_vectors
from viz import bertviz_offline
from viz.bertviz_offline import (
    BertvizLimits,
    BertvizUnavailable,
    encoder_decoder_entries,
    head_view_html,
    model_view_html,
    neuron_view_html,
    safe_json,
    self_attention_entries,
)
from viz.labels import display_token

TEXT, PAIR = "The cat sat on the mat.", "It slept."
HOSTILE = "</script><script>document.title='pwned'</script>\u2028"


def _params(html: str, marker: str) -> dict:
    """The JSON a bertviz page hands its script, found after `marker`."""
    start = html.index(marker) + len(marker)
    return json.JSONDecoder().raw_decode(html[start:].lstrip())[0]


@pytest.fixture(scope="module")
def bert_run(tiny_models):
    loaded = load_model(str(tiny_models["bert"]))
    return loaded, run_attention(loaded, TEXT, PAIR)


def _torch_layers(attentions: np.ndarray) -> tuple:
    return tuple(torch.tensor(layer)[None] for layer in attentions)  # bertviz wants [1, heads, n, n] per layer


def test_head_view_sends_what_bertviz_itself_sends(bert_run):
    _, run = bert_run
    b_start = run.tokens.index("[SEP]") + 1
    reference = _params(head_view(_torch_layers(run.attentions), run.tokens, sentence_b_start=b_start,
                                  html_action="return").data, "const params =")
    limits = BertvizLimits(max_tokens=64)
    ours = _params(head_view_html(self_attention_entries(run.attentions, run.tokens, b_start, limits), [0, 1],
                                  limits=limits), "const params =")
    assert [e["name"] for e in ours["attention"]] == [e["name"] for e in reference["attention"]]
    for mine, theirs in zip(ours["attention"], reference["attention"]):
        assert mine["left_text"] == theirs["left_text"] and mine["right_text"] == theirs["right_text"]
        np.testing.assert_allclose(mine["attn"], theirs["attn"], atol=5e-4)  # rounded to 3 decimals
    assert ours["include_layers"] == reference["include_layers"] == [0, 1]


def test_model_view_sends_what_bertviz_itself_sends(bert_run):
    _, run = bert_run
    reference = _params(model_view(_torch_layers(run.attentions), run.tokens, include_layers=[1],
                                   html_action="return").data, "const params =")
    limits = BertvizLimits(max_tokens=64)
    ours = _params(model_view_html(self_attention_entries(run.attentions, run.tokens, None, limits), [1], limits),
                   "const params =")
    for key in ("include_layers", "include_heads", "total_heads", "default_filter"):
        assert ours[key] == reference[key], key
    np.testing.assert_allclose(ours["attention"][0]["attn"], reference["attention"][0]["attn"], atol=5e-4)


def test_pages_are_self_contained_and_tokens_cannot_end_the_script(bert_run):
    _, run = bert_run
    tokens = [HOSTILE] + run.tokens[1:]
    entries = self_attention_entries(run.attentions, tokens, None, BertvizLimits())
    for html in (head_view_html(entries, [0, 1]), model_view_html(entries, [0, 1])):
        assert "<script src" not in html  # nothing is fetched
        assert "d3.v5" not in html and "https://d3js.org v5.7.0" in html  # d3 5.7.0 inlined from mpld3
        assert "</script><script>document" not in html
        assert html.count("</script") == 4  # d3, jQuery, the require stand-in, the view: no token ends a script
        assert _params(html, "const params =")["attention"][0]["left_text"][0] == display_token(HOSTILE)


def test_safe_json_round_trips_and_escapes_markup():
    value = {"t": HOSTILE + "&<>", "x": [0.5, 1]}
    text = safe_json(value)
    assert not re.search(r"[<>&\u2028\u2029]", text)
    assert json.loads(text) == value


def test_caps_cut_tokens_and_drop_blocks_beyond_them(bert_run):
    _, run = bert_run
    b_start = run.tokens.index("[SEP]") + 1
    assert b_start == 9  # [CLS] the cat sat on the mat . [SEP]
    entries = self_attention_entries(run.attentions, run.tokens, b_start, BertvizLimits(max_tokens=5))
    assert len(entries) == 1 and entries[0].attentions.shape == (2, 4, 5, 5)
    assert entries[0].left_tokens == entries[0].right_tokens == run.tokens[:5]
    entries = self_attention_entries(run.attentions, run.tokens, b_start, BertvizLimits(max_tokens=10))
    assert [e.attentions.shape[-2:] for e in entries] == [(10, 10), (9, 9), (1, 1), (9, 1), (1, 9)]
    small = head_view_html(entries, [0], limits=BertvizLimits(decimals=1), zoom=1.5)
    assert "zoom:1.5;" in small
    numbers = _params(small, "const params =")["attention"][0]["attn"]
    assert np.allclose(np.array(numbers) * 10, np.round(np.array(numbers) * 10))  # one decimal


def test_encoder_decoder_menu(tiny_models):
    run = run_attention(load_model(str(tiny_models["t5"])), TEXT, PAIR)
    entries = encoder_decoder_entries(run.attentions, run.decoder_attentions, run.cross_attentions, run.tokens,
                                      run.decoder_tokens, BertvizLimits(max_tokens=4))
    assert [(e.name, e.attentions.shape[-2:]) for e in entries] == [("Encoder", (4, 4)), ("Decoder", (4, 4)),
                                                                     ("Cross", (4, 4))]
    assert entries[2].left_tokens == run.decoder_tokens[:4] and entries[2].right_tokens == run.tokens[:4]


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_neuron_vectors_reproduce_the_attention(tiny_models, kind):
    loaded = load_model(str(tiny_models[kind]))
    run = run_attention(loaded, TEXT)
    queries, keys = neuron_vectors(loaded, TEXT)
    logits = queries @ np.swapaxes(keys, -1, -2) / np.sqrt(queries.shape[-1])  # what the neuron view computes
    if run.causal:
        logits = np.where(np.tril(np.ones(logits.shape[-2:], bool)), logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(weights / weights.sum(-1, keepdims=True), run.attentions, atol=1e-5)

    entries = self_attention_entries(run.attentions, run.tokens, None, BertvizLimits(max_tokens=6), queries, keys)
    params = _params(neuron_view_html(entries, run.causal, layer=1, head=2), "window.bertviz_params =")
    np.testing.assert_allclose(params["attention"]["all"]["queries"][1][2], queries[1, 2, :6], atol=5e-4)
    assert params["bidirectional"] is (not run.causal) and (params["layer"], params["head"]) == (1, 2)


def test_neuron_view_says_why_not_for_encoder_decoders(tiny_models):
    with pytest.raises(NeuronViewUnsupported, match="encoder-decoder"):
        neuron_vectors(load_model(str(tiny_models["t5"])), TEXT)


def test_a_missing_library_is_named(monkeypatch):
    bertviz_offline._libraries.cache_clear()
    monkeypatch.setattr(bertviz_offline.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BertvizUnavailable, match="mpld3"):
        head_view_html([bertviz_offline.BertvizEntry("All", np.ones((1, 1, 1, 1)), ["a"], ["a"])], [0])
    monkeypatch.undo()
    bertviz_offline._libraries.cache_clear()
