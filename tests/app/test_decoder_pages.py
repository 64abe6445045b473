"""Every page with a decoder LLM, through AppTest: the tiny Llama stands in for SmolLM2 (grouped-query
attention: 4 query heads, 2 key/value heads; rotary positions). The Heads page's key/value groups,
next-token and fill-mask predictions, the induction probe and its link, decoder statistics; the
special-token switch wherever predictions are listed; a GGUF model's first load."""
import html

import numpy as np
import pytest

from models import load_model, run_attention
from models.analysis.head_stats import HeadMetric, head_statistics
from models.analysis.induction import induction_probe, probe_token_range
from models.core.predictions import fill_mask, next_token_predictions
from tests.app.helpers import array, figure, figures, messages, open_app, set_state
from tests.app.helpers import topk_tables as tables
from tests.tiny_models import save_tiny_bert_favouring_special, save_tiny_gpt2_favouring_special, write_llama_gguf
from viz.labels import display_token

TEXT = "The capital of Italy is Rome. The capital of"
MASKS = "The [MASK] of [MASK] is Rome."
special_of = {"bert": ["[MASK]", "[PAD]"], "gpt2": ["<|endoftext|>"]}  # what each favouring model puts first


@pytest.fixture(scope="module")
def llama(tiny_models):
    return str(tiny_models["llama"])


@pytest.fixture(scope="module")
def special_bert(tmp_path_factory):
    return save_tiny_bert_favouring_special(tmp_path_factory.mktemp("special") / "bert")


@pytest.fixture(scope="module")
def special_gpt2(tmp_path_factory):
    return save_tiny_gpt2_favouring_special(tmp_path_factory.mktemp("special") / "gpt2")


def _healthy(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _focused_title(at) -> str:
    return figure(at, "Layer ")["layout"]["title"]["text"]


def _cells(candidates) -> list[str]:
    """Candidates as tables() reads their cells: token, the special badge, probability (spaces collapsed)."""
    return [" ".join(f"{display_token(c.token)}{' special' if c.special else ''} {c.probability:.1%}".split())
            for c in candidates]


# --- the Heads page ---

def test_key_value_groups_are_marked_on_the_grid_and_in_the_focused_title(llama):
    at = open_app(None, model=llama, text=TEXT)
    _healthy(at)
    assert _focused_title(at) == "Layer 0, head 0 (self-attention) · key/value head 0, shared with heads 0–1"
    grid = figure(at, "All heads")
    assert [a["text"] for a in grid["layout"]["annotations"]] == ["kv 0", "kv 1"]
    lines = [s for s in grid["layout"]["shapes"] if s["type"] == "line"]
    assert len(lines) == 1  # one line parts heads 0-1 from heads 2-3
    assert "2 key/value heads: grouped-query attention" in " ".join(c.value for c in at.caption)
    set_state(at, head=3)
    assert _focused_title(at) == "Layer 0, head 3 (self-attention) · key/value head 1, shared with heads 2–3"
    set_state(at, aggregation="layer mean")
    assert _focused_title(at) == "Layer 0, mean of its 4 heads (self-attention)"  # no single key/value head


def test_a_decoders_rollout_starts_at_its_last_token(llama):
    at = open_app(None, model=llama, text=TEXT, aggregation="rollout")
    _healthy(at)
    options = at.selectbox(key="rollout_token").options
    assert at.selectbox(key="rollout_token").value == options[-1]  # its first token draws on itself alone


def test_an_encoder_has_no_key_value_marks(tiny_models):
    at = open_app(None, model=str(tiny_models["bert"]), text="The cat sat.")
    assert _focused_title(at) == "Layer 0, head 0 (self-attention)"
    assert not figure(at, "All heads")["layout"].get("annotations")


def test_next_token_predictions_after_the_text_and_after_a_chosen_token(llama):
    at = open_app(None, model=llama, text=TEXT)
    _healthy(at)
    loaded = load_model(llama)
    run = run_attention(loaded, TEXT)
    [table] = tables(at)
    last = run.n - 1
    assert table[0] == ["rank", f"after “{display_token(run.labels[last])}” ({last}, the end)"]
    expected = next_token_predictions(loaded, TEXT).top
    assert [row[1] for row in table[1:]] == _cells(expected)
    assert at.selectbox(key="predict_after").value == f"{last} {display_token(run.labels[last])}"
    set_state(at, predict_after=f"2 {display_token(run.labels[2])}", top_k=10)
    _healthy(at)
    [table] = tables(at)
    assert table[0][1:] == [f"after “{display_token(run.labels[2])}” (2)",
                            f"after “{display_token(run.labels[last])}” ({last}, the end)"]
    at_two = next_token_predictions(loaded, TEXT, top_k=10, position=2)
    assert [row[1] for row in table[1:]] == _cells(at_two.top) and len(table) == 11
    follows = next(m.value for m in at.markdown if m.value.startswith("The text goes on with"))
    assert f"rank {at_two.rank(at_two.following):,} of 400" in follows


def _passes(at, **values) -> list[int]:
    """set_state(at, **values), returning the tokens of each forward pass of the tiny Llama meanwhile
    (its base model's: every pass of the LM calls it)."""
    from transformers import LlamaModel

    passes, forward = [], LlamaModel.forward

    def counted(self, input_ids=None, **kwargs):
        passes.append(input_ids.shape[1])
        return forward(self, input_ids=input_ids, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LlamaModel, "forward", counted)
        set_state(at, **values)
    _healthy(at)
    return passes


def test_the_predictions_run_no_second_forward_pass(llama):
    at = open_app(None, model=llama, text=TEXT)  # loads the model, probes its LM head once
    text = "The capital of France is Paris. The capital of"  # a new text: the model runs
    passes = _passes(at, text=text)
    loaded = load_model(llama)
    run = run_attention(loaded, text)
    assert passes == [run.n]  # the run's own; the predictions after the text read its hidden states
    [table] = tables(at)
    assert [row[1] for row in table[1:]] == _cells(next_token_predictions(loaded, text).top)
    assert _passes(at, predict_after=f"2 {display_token(run.labels[2])}") == []
    [table] = tables(at)
    assert [row[1] for row in table[1:]] == _cells(next_token_predictions(loaded, text, position=2).top)


def test_predictions_stay_on_the_page_in_lecture_mode(llama):
    at = open_app(None, model=llama, text=TEXT, lecture="true")
    _healthy(at)
    assert tables(at) and "font-size: 1.50rem" in at.get("html")[0].proto.body
    assert "Next-token predictions" not in [e.label for e in at.expander]


def test_fill_mask_at_each_mask_and_a_note_without_one(special_bert):
    at = open_app(None, model=str(special_bert), text=MASKS)
    _healthy(at)
    [table] = tables(at)
    reference = fill_mask(load_model(str(special_bert)), MASKS)
    assert table[0] == ["rank", "mask 1 (position 2)", "mask 2 (position 4)"]
    for column, mask in enumerate(reference.masks, start=1):
        assert [row[column] for row in table[1:]] == _cells(mask.top)
    assert not any("[MASK]" in cell or "[PAD]" in cell for row in table[1:] for cell in row)
    set_state(at, text="The capital of Italy is Rome.")
    assert not tables(at) and "in the text to see what" in messages(at)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_the_special_token_switch_lists_them_marked(special_bert, special_gpt2, kind):
    model, text = (special_bert, MASKS) if kind == "bert" else (special_gpt2, "The capital of Italy is")
    at = open_app(None, model=str(model), text=text)
    first = [row[1] for row in tables(at)[0][1:]]
    assert not any("special" in cell for cell in first)
    set_state(at, special=True)
    _healthy(at)
    shown = [row[1] for row in tables(at)[0][1:]]
    loaded = load_model(str(model))
    if kind == "bert":
        expected = fill_mask(loaded, text, include_special=True).masks[0].top
        assert shown[:2] == _cells(expected)[:2] and shown[0].startswith("[MASK] special")
    else:
        expected = next_token_predictions(loaded, text, include_special=True).top
        assert shown[0].startswith("<|endoftext|> special")
    assert shown == _cells(expected)
    assert shown[len(special_of[kind]):] == first[:len(first) - len(special_of[kind])]  # moved down, same values


def test_other_models_get_a_note_instead_of_predictions(tiny_models):
    at = open_app(None, text="The cat sat.")  # minilm: no prediction head
    assert "is without a prediction head here" in " ".join(c.value for c in at.caption) and not tables(at)
    at = open_app(None, model=str(tiny_models["t5"]), text="The cat sat.")
    assert "is an encoder-decoder: this page shows its attention" in " ".join(c.value for c in at.caption)


# --- the induction probe ---

def test_the_probe_is_one_click_and_lives_in_the_url(llama):
    at = open_app(None, model=llama, text=TEXT)
    next(b for b in at.button if b.label == "Run the induction probe").click()
    set_state(at)  # a run (set_state re-offers the typed-in model to AppTest)
    _healthy(at)
    assert at.query_params["input"] == "induction-probe" and at.session_state["text"] == TEXT
    banner = next(i.value for i in at.info if "Showing the induction probe" in i.value)
    loaded = load_model(llama)
    low, high = probe_token_range(loaded)
    assert f"BOS, then 50 random tokens (ids {low}–{high - 1}, seed 0)" in banner
    ids = induction_probe(loaded, 50, 0, low, high)
    run = run_attention(loaded, ids)
    induction = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal).values[HeadMetric.INDUCTION]
    layer, head = np.unravel_index(np.argmax(induction), induction.shape)
    assert (at.session_state["layer"], at.session_state["head"]) == (layer, head)  # its strongest induction head
    assert array(figure(at, "Layer ")["data"][0]["z"]).shape == (101, 101)
    assert at.session_state["statistics"] and at.selectbox(key="metric").value == "induction"
    assert "Strongest induction heads on the probe: " + f"L{layer} H{head} ({induction[layer, head]:.2f})" in \
        " ".join(m.value for m in at.markdown)
    np.testing.assert_allclose(array(figure(at, "Induction (share) of every head")["data"][0]["z"]), induction,
                               rtol=1e-5)
    assert at.toggle(key="words").disabled  # random tokens make no words
    [table] = tables(at)  # next tokens after the probe's last token
    assert [row[1] for row in table[1:]] == _cells(next_token_predictions(loaded, ids).top)
    next(b for b in at.button if b.label == "Back to my text").click()
    set_state(at)
    _healthy(at)
    assert "input" not in at.query_params and not any("Showing the induction probe" in i.value for i in at.info)
    assert array(figure(at, "Layer ")["data"][0]["z"]).shape == (run_attention(loaded, TEXT).n,) * 2


def test_a_probe_link_with_length_and_seed(llama):
    at = open_app(None, model=llama, input="induction-probe", probe_length="10", probe_seed="3")
    _healthy(at)
    loaded = load_model(llama)
    ids = induction_probe(loaded, 10, 3, *probe_token_range(loaded))
    run = run_attention(loaded, ids)
    assert figure(at, "Layer ")["data"][0]["y"][0] == html.escape("0 " + display_token(run.labels[0]))
    assert array(figure(at, "Layer ")["data"][0]["z"]).shape == (21, 21)
    assert "the same 10 again" in messages(at)
    set_state(at, layer=0, head=1)  # a focus of one's own stays
    assert _focused_title(at).startswith("Layer 0, head 1 ")


def test_a_probe_link_the_model_cant_take_is_explained(llama, tiny_models):
    at = open_app(None, model=llama, input="induction-probe", probe_length="500")
    _healthy(at)
    assert "asks for probe length '500', but this model has probe lengths 2-63" in messages(at)
    at = open_app(None, model=llama, input="something-else", text=TEXT)
    assert "asks for the input 'something\\-else'" in messages(at) and "input" not in at.query_params
    at = open_app(None, model=str(tiny_models["bert"]), input="induction-probe", text="The cat sat.")
    _healthy(at)
    assert "The induction probe is for decoders" in messages(at)
    assert _focused_title(at) == "Layer 0, head 0 (self-attention)"


def test_decoder_statistics_leave_out_what_a_causal_model_cant_have(llama):
    at = open_app(None, model=llama, text=TEXT, statistics="true", metric="to first token")
    _healthy(at)
    options = at.selectbox(key="metric").options
    assert {"induction", "to first token", "to previous"} <= set(options) and "to next" not in options
    loaded = load_model(llama)
    run = run_attention(loaded, TEXT)
    stats = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal)
    table = at.dataframe[0].value
    assert "to next" not in table.columns
    np.testing.assert_allclose(table["induction"], stats.values[HeadMetric.INDUCTION].ravel(), atol=1e-4)
    np.testing.assert_allclose(array(figure(at, "To first token (share) of every head")["data"][0]["z"]),
                               stats.values[HeadMetric.TO_FIRST_TOKEN], rtol=1e-5)


# --- the other pages ---

def test_scaling_page_describes_rotary_positions_and_shared_keys(llama):
    at = open_app("pages/scaling.py", model=llama, text=TEXT, scores_head="3")
    _healthy(at)
    captions = " ".join(c.value for c in at.caption)
    assert "after its rotary position embedding (RoPE" in captions
    assert "head 3 reads key/value head 1, whose keys heads 2–3 share" in captions
    assert "reproduces this model's attention weights" in captions
    assert "d_head = 8" in " ".join(m.value for m in at.markdown)


def test_sparse_page_enforces_a_pattern_on_a_decoder_and_predicts_its_next_token(llama, special_gpt2):
    at = open_app("pages/sparse.py", model=llama, text=TEXT, view="Live model", pattern="sliding window", w="1")
    _healthy(at)
    assert figure(at, "Enforced: layer 0, head 0")
    assert any(s.value == "Next-token predictions, dense vs sparse" for s in at.subheader)
    [frame] = at.dataframe
    loaded = load_model(llama)
    assert frame.value["dense"].tolist() == [display_token(c.token) for c in next_token_predictions(loaded, TEXT).top]
    at = open_app("pages/sparse.py", model=str(special_gpt2), text="The capital of Italy is", view="Live model")
    assert not any("(special)" in t for t in at.dataframe[0].value["dense"])
    set_state(at, special=True)
    _healthy(at)
    assert at.dataframe[0].value["dense"].iloc[0] == "<|endoftext|> (special)"


def test_adaptive_span_page_applies_the_span_to_a_decoders_attention(llama):
    at = open_app("pages/adaptive_span.py", model=llama, text=TEXT, span_z="2", span_R="1")
    _healthy(at)
    after = array(figure(at, "After the span mask")["data"][0]["z"])
    assert np.isnan(after[0, 1])  # the causal future stays masked
    assert np.nansum(after[-1, :-3]) == 0  # keys more than z + R back are cut


def test_compare_page_aligns_a_decoder_and_an_encoder_by_words(llama, tiny_models):
    at = open_app("pages/compare.py", model_a=llama, model_b=str(tiny_models["bert"]), text="Unbelievably, cats nap.")
    _healthy(at)
    assert "compared word by word" in messages(at)
    assert [f["layout"]["title"]["text"] for f in figures(at)][0].startswith("A (llama): layer 0, head 0")


def test_checkpoints_table_leaves_special_tokens_out_unless_shown(tmp_path):
    save_tiny_bert_favouring_special(tmp_path / "run" / "checkpoint-10")
    at = open_app("pages/checkpoints.py", ckpt_source="folder", ckpt_folder=str(tmp_path / "run"), ckpt_text=MASKS)
    _healthy(at)
    default = tables(at)
    assert len(default) == 2 and not any("special" in cell for t in default for row in t for cell in row)
    set_state(at, ckpt_special=True)
    _healthy(at)
    shown = tables(at)
    reference = fill_mask(load_model(str(tmp_path / "run" / "checkpoint-10")), MASKS, include_special=True)
    for table, mask in zip(shown, reference.masks):
        assert [row[1] for row in table[1:]] == _cells(mask.top)
        assert table[1][1].startswith("[MASK] special") and table[2][1].startswith("[PAD] special")


# --- a GGUF model's first load ---

def test_a_gguf_models_first_load_converts_it_once_with_a_toast(tiny_models, tmp_path):
    path = write_llama_gguf(tiny_models["llama"], tmp_path / "tiny-llama.gguf")
    at = open_app(None, model=str(path), text=TEXT)
    _healthy(at)
    assert [t.value for t in at.toast] and "converted in" in at.toast[0].value
    assert _focused_title(at).endswith("· key/value head 0, shared with heads 0–1")
    set_state(at, head=2)
    assert not at.toast  # later runs read the converted copy


def test_token_pickers_drop_a_token_of_the_old_text(llama):
    at = open_app(None, model=llama, text=TEXT, aggregation="rollout")
    loaded = load_model(llama)
    run = run_attention(loaded, TEXT)
    set_state(at, predict_after=f"2 {display_token(run.labels[2])}", rollout_token=f"3 {display_token(run.labels[3])}")
    assert at.selectbox(key="predict_after").value.startswith("2 ")
    longer = TEXT + " France is Paris. The capital of Spain is Madrid."
    new = run_attention(loaded, longer)
    set_state(at, text=longer)
    _healthy(at)
    last = f"{new.n - 1} {display_token(new.labels[-1])}"
    assert at.selectbox(key="predict_after").value == last
    assert at.selectbox(key="rollout_token").value == last  # a causal model's default: its last token
