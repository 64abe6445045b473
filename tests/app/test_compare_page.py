"""The Compare page through AppTest: picking A and B, the side-by-side heads, the divergence
matrix, head matching, refusals, the checkpoint series view, and B as a compressed copy of A."""
import shutil

import numpy as np
import pytest

from models import load_model, run_attention
from models.checkpoints.demo import demo_series_dir
from models.compare.alignment import align_runs, shared_start
from models.compare.divergence import head_divergence, match_heads
from models.core.predictions import next_token_predictions
from models.interventions import compression
from models.interventions.compression import INT8_METHOD, pruned_l1, quantized_int8
from models.interventions.embedding import cosine_similarity, sentence_embedding
from models.interventions.footprint import memory_bytes, zero_share
from models.interventions.loss import token_losses
from tests.app.helpers import array, figure, figures, messages, open_app, set_state
from tests.tiny_models import MODEL_CLASSES, bert_tokenizer, save_tiny_series, tiny_config
from viz.labels import markdown_literal

PAGE = "pages/compare.py"
TEXT = "The cat sat on the mat."


@pytest.fixture(scope="module")
def saved_series(tmp_path_factory):
    return save_tiny_series(tmp_path_factory.mktemp("compare-series"))


@pytest.fixture
def series(saved_series):
    """The series as the app's demo series (the data folder is a fresh tmp folder per test)."""
    folder = demo_series_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(saved_series, target_is_directory=True)
    return folder


def _healthy(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _title(fig: dict) -> str:
    return fig["layout"]["title"]["text"]


def _runs(spec_a: str, spec_b: str, text: str = TEXT):
    loaded_a, loaded_b = load_model(spec_a), load_model(spec_b)
    return align_runs(loaded_a, run_attention(loaded_a, text), loaded_b, run_attention(loaded_b, text), text)


def test_the_sidebar_model_is_compared_with_the_series_final_checkpoint(series):
    at = open_app(PAGE, text=TEXT)
    _healthy(at)
    assert at.selectbox(key="model_b").value == str(series / "checkpoint-1000")
    # minilm (6 x 12) has heads the tiny BERT (2 x 4) lacks: B's closest head is shown
    assert at.radio(key="b_head").options == ["closest to A's head"]
    aligned = _runs("minilm", str(series / "checkpoint-1000"))
    matching = match_heads(aligned.a, aligned.b)
    layer_b, head_b = matching.best_layer[0, 0], matching.best_head[0, 0]
    a, b = figure(at, "A (minilm): layer 0, head 0"), figure(at, f"B (checkpoint-1000): layer {layer_b}, head {head_b}")
    assert a["data"][0]["zmax"] == b["data"][0]["zmax"] == pytest.approx(
        max(aligned.a[0, 0].max(), aligned.b[layer_b, head_b].max()))  # one colour range
    assert a["data"][0]["y"] == b["data"][0]["y"]  # same axes
    difference = figure(at, "B − A")["data"][0]
    np.testing.assert_allclose(array(difference["z"]), aligned.b[layer_b, head_b] - aligned.a[0, 0], atol=1e-6)
    assert difference["zmid"] == 0 and difference["zmin"] == -difference["zmax"]
    assert "head-by-head matrix needs the same shape" in messages(at)
    rings = next(t for t in figure(at, "JS divergence of every head")["data"] if t["type"] == "scatter")
    assert rings["x"][0] == layer_b * 4 + head_b  # B's heads are columns, layer by layer


def test_without_a_series_model_b_is_asked_for():
    at = open_app(PAGE)
    _healthy(at)
    text = messages(at)
    assert "Pick or type model B" in text and "python -m models.checkpoints --demo" in text
    assert "on the Checkpoints page (*Train the demo series*" in text  # no shell needed
    assert not figures(at)


def test_a_series_folder_outside_the_allowed_ones_is_not_listed():
    at = open_app(PAGE, series="/etc")  # the tests allow only the temporary folder
    _healthy(at)
    assert "doesn't read checkpoint series from '/etc'" in messages(at)


def test_two_checkpoints_of_one_shape_get_the_divergence_matrix(series):
    first, final = str(series / "checkpoint-10"), str(series / "checkpoint-1000")
    at = open_app(PAGE, model_a=first, model_b=final, text=TEXT)
    _healthy(at)
    aligned = _runs(first, final)
    matrix = figure(at, "JS divergence of A")
    np.testing.assert_allclose(array(matrix["data"][0]["z"]), head_divergence(aligned.a, aligned.b), atol=1e-6)
    assert at.radio(key="b_head").value == "same layer and head"
    at.slider(key="compare_layer").set_value(1).run()
    at.slider(key="compare_head").set_value(2).run()
    _healthy(at)
    figure(at, "A (checkpoint-10): layer 1, head 2")
    figure(at, "B (checkpoint-1000): layer 1, head 2")
    at.radio(key="b_head").set_value("closest to A's head").run()
    matching = match_heads(aligned.a, aligned.b)
    figure(at, f"B (checkpoint-1000): layer {matching.best_layer[1, 2]}, head {matching.best_head[1, 2]}")
    table = at.dataframe[0].value
    assert table["JSD to it (nats)"].tolist() == pytest.approx(matching.best_divergence.ravel(), abs=1e-4)


def test_a_model_against_itself_differs_nowhere(series):
    spec = str(series / "checkpoint-100")
    at = open_app(PAGE, model_a=spec, model_b=spec, text=TEXT)
    _healthy(at)
    assert not array(figure(at, "B − A")["data"][0]["z"]).any()
    assert not array(figure(at, "JS divergence of A")["data"][0]["z"]).any()


def test_different_tokenizers_are_compared_word_by_word(tiny_models):
    at = open_app(PAGE, model_a=str(tiny_models["bert"]), model_b=str(tiny_models["gpt2"]),
                  text="Tokenizers disagree, don't they?")
    _healthy(at)
    assert "compared word by word" in messages(at)
    labels = figure(at, "A (bert): layer 0, head 0")["data"][0]["y"]  # escaped for plotly: ' is &#x27;
    assert labels == ["0 Tokenizers", "1 disagree", "2 ,", "3 don", "4 &#x27;t", "5 they", "6 ?"]


def test_a_text_too_long_for_either_model_is_compared_on_the_start_both_read(tiny_models):
    text = " ".join(f"w{i % 50}" for i in range(700))  # tiny BERT reads 512 tokens, tiny GPT-2 1024
    spec_a, spec_b = str(tiny_models["bert"]), str(tiny_models["gpt2"])
    at = open_app(PAGE, model_a=spec_a, model_b=spec_b, text=text)
    _healthy(at)
    start = shared_start((load_model(spec_a), load_model(spec_b)), text, 512)
    words = len(start.split())
    assert f"its first {len(start):,} of {len(text):,} characters, up to “{start.split()[-1]}”" in messages(at)
    assert at.session_state["text"] == text
    def longest(part: str) -> int:
        return max(len(load_model(spec).tokenizer(part)["input_ids"]) for spec in (spec_a, spec_b))
    assert longest(start) <= 512 < longest(text[:text.index(" ", len(start) + 1)])  # the longest start, to a word
    expected = _runs(spec_a, spec_b, start)
    assert expected.level == "word" and expected.a.shape[-1] == words
    np.testing.assert_allclose(array(figure(at, "A (bert): layer 0, head 0")["data"][0]["z"]), expected.a[0, 0],
                               atol=1e-6)


def test_a_sentence_pair_too_long_for_either_model_is_refused_and_the_text_kept(tiny_models):
    text = "word " * 700
    at = open_app(PAGE, model_a=str(tiny_models["bert"]), model_b=str(tiny_models["gpt2"]), text=text,
                  text_b="A second sentence.")
    assert not at.exception and not at.error
    assert "can't be compared on this text" in messages(at) and "too long for model A" in messages(at)
    assert at.session_state["text"] == text
    assert not figures(at)


def test_a_model_b_that_cannot_load_is_named(tiny_models):
    at = open_app(PAGE, model_a=str(tiny_models["bert"]), model_b="/no/such/model", text=TEXT)
    assert not at.exception
    assert "Model B: The folder '/no/such/model' does not exist." in [e.value for e in at.error]
    assert at.session_state["text"] == TEXT


def test_a_link_with_a_layer_the_model_lacks_is_explained(tiny_models):
    spec = str(tiny_models["bert"])
    at = open_app(PAGE, model_a=spec, model_b=spec, text=TEXT, compare_layer="7")
    assert "asks for layer '7'" in messages(at)
    figure(at, "A (bert): layer 0, head 0")


def test_a_model_with_one_layer_and_one_head(tmp_path, tiny_models):
    config = tiny_config("bert")
    config.num_hidden_layers, config.num_attention_heads = 1, 1
    MODEL_CLASSES["bert"](config).save_pretrained(tmp_path / "one-head")
    bert_tokenizer().save_pretrained(tmp_path / "one-head")
    at = open_app(PAGE, model_a=str(tmp_path / "one-head"), model_b=str(tiny_models["bert"]), text=TEXT)
    _healthy(at)
    assert "Layer of A: 0, the only one" in [c.value for c in at.caption]
    assert array(figure(at, "JS divergence of every head")["data"][0]["z"]).shape == (1, 8)  # A: 1 head, B: 8


def test_a_broken_checkpoint_is_left_out_with_a_warning(tmp_path, saved_series):
    folder = shutil.copytree(saved_series, tmp_path / "series")  # a model is read only from inside its folder
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "config.json").write_text("{}")  # a write that never finished
    at = open_app(PAGE, series=str(folder), compare_view="Checkpoint series", text=TEXT)
    _healthy(at)
    assert "Left out of the series: checkpoint-5 has no weights file" in messages(at)
    assert figure(at, "Entropy (nats) of each head")["data"][0]["x"] == [10, 100, 1000]


def test_a_checkpoint_that_fails_to_load_is_left_out_and_the_others_shown(tmp_path):
    folder = save_tiny_series(tmp_path / "series", steps=(10, 20, 30))
    weights = folder / "checkpoint-20" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # found, but fails to load
    at = open_app(PAGE, series=str(folder), compare_view="Checkpoint series", text=TEXT)
    _healthy(at)
    assert "Left out of the series on this text: step 20: Couldn't load the model" in messages(at)
    assert figure(at, "Entropy (nats) of each head")["data"][0]["x"] == [10, 30]


def test_the_series_view_follows_every_head_over_steps(series):
    at = open_app(PAGE, compare_view="Checkpoint series", text=TEXT)
    _healthy(at)
    panels = figure(at, "Entropy (nats) of each head")
    assert len([t for t in panels["data"] if t["type"] == "scatter"]) == 2 * 4  # a line per head, 2 layers
    assert panels["data"][0]["x"] == [10, 100, 1000]
    divergence = figure(at, "JS divergence from the final checkpoint")
    assert [array(t["y"])[-1] for t in divergence["data"]] == [0, 0]  # the final step against itself
    set_state(at, series_metric="to self")
    _healthy(at)
    assert array(figure(at, "To self (share)")["data"][0]["y"]).max() <= 1


# --- model B as a compressed copy of A ---

def _metric(at, label_start: str):
    matches = [m for m in at.metric if m.label.startswith(label_start)]
    assert matches, f"no metric {label_start!r} in {[m.label for m in at.metric]}"
    return matches[0]


def test_model_b_as_a_pruned_copy_of_a(tiny_models):
    spec = str(tiny_models["gpt2"])
    at = open_app(PAGE, model=spec, model_b="A, L1-pruned", b_prune="30", text=TEXT)
    _healthy(at)
    original = load_model(spec)
    pruned = pruned_l1(original, 0.3)
    assert _metric(at, "Parameters that are 0").value == f"{zero_share(original):.1%} → {zero_share(pruned):.1%}"
    assert any(c.value.startswith("B is a copy of A") and "smallest-|w| 30%" in c.value for c in at.caption)
    b = figure(at, "B (gpt2 · L1-pruned 30%): layer 0, head 0")
    np.testing.assert_allclose(np.nan_to_num(array(b["data"][0]["z"])),  # the causal future is drawn as NaN
                               run_attention(pruned, TEXT).attentions[0, 0], atol=1e-6)
    bars = figure(at, "Loss per token: A (grey) and B (orange)")["data"]
    np.testing.assert_allclose(array(bars[1]["y"]), token_losses(pruned, TEXT).losses, rtol=1e-5)
    top = next_token_predictions(original, TEXT).top[0]
    after = next_token_predictions(pruned, TEXT).probabilities[top.token_id]
    label = f"“{markdown_literal(top.token.strip())}” (next token): A → B"  # the token shown as typed, never markdown
    assert _metric(at, label).value == f"{top.probability:.1%} → {after:.1%}"
    matrix = figure(at, "JS divergence of A")  # the Compare page's own views follow
    assert array(matrix["data"][0]["z"]).any()
    at.slider(key="b_prune").set_value(0)
    set_state(at, model=spec)
    assert not array(figure(at, "JS divergence of A")["data"][0]["z"]).any()  # 0% pruned: B is A


def test_model_b_quantized_to_int8_says_which_quantization_ran(tiny_models):
    spec = str(tiny_models["bert"])
    at = open_app(PAGE, model=spec, model_b="A, int8 (torchao)", text="The [MASK] sat on the mat.")
    _healthy(at)
    assert any(INT8_METHOD in c.value for c in at.caption)
    original = load_model(spec)
    ratio = memory_bytes(quantized_int8(original)) / memory_bytes(original)  # > 1 here: the tied head is untied
    assert _metric(at, "Size in memory").delta == f"{ratio - 1:+.0%}"
    assert _metric(at, "“").label.endswith("(mask): A → B")
    figure(at, "B (bert · int8 (torchao)): layer 0, head 0")


def test_a_pruned_minilm_is_compared_by_its_sentence_embedding(default_model):
    at = open_app(PAGE, model_b="A, L1-pruned", text=TEXT)
    _healthy(at)
    pruned = pruned_l1(default_model, 0.2)
    expected = cosine_similarity(sentence_embedding(default_model, TEXT), sentence_embedding(pruned, TEXT))
    assert _metric(at, "Sentence embedding: cosine similarity of B to A").value == f"{expected:.4f}"


def test_a_pruning_share_the_control_does_not_offer_gets_the_link_warning(tiny_models):
    at = open_app(PAGE, model=str(tiny_models["gpt2"]), model_b="A, L1-pruned", b_prune="150", text=TEXT)
    _healthy(at)
    assert f"'{markdown_literal('150')}'" in messages(at)
    assert at.slider(key="b_prune").value == 20
    figure(at, "B (gpt2 · L1-pruned 20%)")


def test_int8_without_an_engine_is_a_message_and_the_page_stays(tiny_models, tmp_path, monkeypatch):
    import torchao.quantization

    def no_kernel(*args, **kwargs):
        raise NotImplementedError("Could not run 'aten::_int_mm' with arguments from the 'CPU' backend")

    spec = str(shutil.copytree(tiny_models["bert"], tmp_path / "bert"))  # a model no other test compressed
    compression._int8_quantizer.cache_clear()
    monkeypatch.setattr(torchao.quantization, "quantize_", no_kernel)
    try:
        at = open_app(PAGE, model=spec, model_b="A, int8 (torchao)", text=TEXT)
    finally:
        compression._int8_quantizer.cache_clear()
    assert not at.exception
    assert "Model B: int8 quantization has no engine on this machine" in [e.value for e in at.error][0]
    assert at.selectbox(key="model_b").value == "A, int8 (torchao)" and at.session_state["text"] == TEXT
