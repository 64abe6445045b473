"""The Heads at work page through AppTest: heads switched off from a link, by a statistic or typed in;
what changes (predictions, loss per token, every head's divergence) against the models API; the bit-identical
intact case; head importance and the pruning curve; every kind of model, and the refusals."""
import numpy as np
import pytest
from streamlit.proto.Metric_pb2 import Metric

from models import load_model, run_attention
from models.analysis.head_stats import HeadMetric, head_statistics
from models.compare.divergence import run_divergence
from models.core.predictions import fill_mask, next_token_predictions
from models.interventions.ablation import ablated, ablated_stacks
from models.interventions.embedding import cosine_similarity, sentence_embedding
from models.interventions.importance import CORPUS, head_importance
from models.interventions.importance import pruning_curve as real_pruning_curve
from models.interventions.loss import token_losses
from models.interventions.selection import heads_text, ranked_heads
from tests.app.helpers import array, figure, figures, messages, open_app, set_state
from tests.tiny_models import save_tiny_longformer
from viz.labels import markdown_literal

PAGE = "pages/heads_at_work.py"
TEXT = "The cat sat on the mat. The cat sat on the"


def _healthy(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _loss_bars(at) -> tuple[np.ndarray, np.ndarray]:
    bars = figure(at, "Loss per token")["data"]
    return array(bars[0]["y"]), array(bars[1]["y"])


def _metric(at, label_start: str) -> str:
    matches = [m.value for m in at.metric if m.label.startswith(label_start)]
    assert matches, f"no metric {label_start!r} in {[m.label for m in at.metric]}"
    return matches[0]


def _divergence(at) -> np.ndarray:
    return array(figure(at, "JS divergence of each head")["data"][0]["z"])


@pytest.fixture(scope="module")
def llama(tiny_models):
    return load_model(str(tiny_models["llama"]))


def test_with_no_head_off_every_output_is_the_intact_models_bit_for_bit(tiny_models, llama):
    at = open_app(PAGE, model=str(tiny_models["llama"]), text=TEXT)
    _healthy(at)
    assert "bit for bit" in messages(at)
    intact, changed = _loss_bars(at)
    np.testing.assert_array_equal(changed, intact)
    np.testing.assert_array_equal(intact, token_losses(llama, TEXT).losses)
    assert not _divergence(at).any()
    heads = [array(figure(at, title)["data"][0]["z"]) for title in ("Intact: layer 0", "No head off: layer 0")]
    np.testing.assert_array_equal(heads[0], heads[1])
    top = next_token_predictions(llama, TEXT).top[0]
    label = f"“{markdown_literal(top.token.strip())}” (next token)"
    assert _metric(at, label) == f"{top.probability:.1%} → {top.probability:.1%}"
    unchanged = [m for m in at.metric if m.label.startswith((label, "Mean loss on the text, no head"))]
    assert [(m.delta, m.proto.direction, m.proto.color) for m in unchanged] == [
        ("no change", Metric.MetricDirection.NONE, Metric.MetricColor.GRAY)] * 2  # no arrow up for nothing


def test_heads_off_from_a_link_change_what_the_model_says(tiny_models, llama):
    heads = [(1, 0), (1, 2)]
    at = open_app(PAGE, model=str(tiny_models["llama"]), text=TEXT, off="1.2,1.0")
    _healthy(at)
    assert at.text_input(key="off").value == "1.2,1.0"  # the link as written: tidied on the next run
    intact_run = run_attention(llama, TEXT)
    with ablated(llama, heads):
        losses = token_losses(llama, TEXT).losses
        changed_run = run_attention(llama, TEXT)
        after = next_token_predictions(llama, TEXT)
    intact, changed = _loss_bars(at)
    np.testing.assert_allclose(changed, losses, rtol=1e-6)
    assert not np.allclose(changed[1:], intact[1:])
    divergence = _divergence(at)
    np.testing.assert_allclose(divergence, run_divergence(intact_run, changed_run)["self-attention"], atol=1e-7)
    assert not divergence[0].any()  # the layer of the first head off still attends as before
    top = next_token_predictions(llama, TEXT).top[0]
    assert _metric(at, f"“{markdown_literal(top.token.strip())}” (next token): intact → 2 heads off") == (
        f"{top.probability:.1%} → {after.probabilities[top.token_id]:.1%}")
    set_state(at)
    assert at.text_input(key="off").value == "1.0,1.2" and not at.warning


def test_mean_ablation_replaces_the_heads_by_their_mean(tiny_models, llama):
    at = open_app(PAGE, model=str(tiny_models["llama"]), text=TEXT, off="0.3", ablation="mean")
    _healthy(at)
    with ablated(llama, [(0, 3)], how="mean"):
        losses = token_losses(llama, TEXT).losses
    np.testing.assert_allclose(_loss_bars(at)[1], losses, rtol=1e-6)
    assert figure(at, "Loss per token")["data"][1]["name"] == "1 head off (mean)"


def test_heads_are_picked_by_a_statistic(tiny_models, llama):
    at = open_app(PAGE, model=str(tiny_models["llama"]), text=TEXT, pick_metric="to previous", pick_k="3")
    _healthy(at)
    run = run_attention(llama, TEXT)
    values = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal).values[HeadMetric.TO_PREVIOUS]
    highest = ranked_heads(values, 3)
    assert any(c.value.startswith("The 3 heads with the highest to previous") for c in at.caption)
    next(b for b in at.button if b.label == "Switch off these").click()
    set_state(at)
    _healthy(at)
    assert at.session_state["off"] == heads_text(highest)
    assert figure(at, "Loss per token")["data"][1]["name"] == "3 heads off"
    link = {key: str(value) for key, value in at.query_params.items()}
    assert link["off"] == heads_text(highest) and link["pick_metric"] == "to previous"
    shared = open_app(PAGE, **link)  # the address bar, opened by a colleague
    _healthy(shared)
    np.testing.assert_array_equal(_loss_bars(shared)[1], _loss_bars(at)[1])
    np.testing.assert_array_equal(_divergence(shared), _divergence(at))
    at.segmented_control(key="pick_end").set_value("lowest")
    set_state(at)
    next(b for b in at.button if b.label == "Add them").click()
    set_state(at)
    assert at.session_state["off"] == heads_text(highest + ranked_heads(values, 3, highest=False))


def test_bad_link_values_are_explained_once_and_the_rest_kept(tiny_models):
    at = open_app(PAGE, model=str(tiny_models["llama"]), text=TEXT, off="0.1,7.7,zz", pick_k="999",
                  ablation="random")
    assert not at.exception and not at.error
    said = messages(at)
    assert f"'{markdown_literal('7.7, zz')}'" in said and "2 layers × 4 heads" in said  # in the link's order
    assert f"'{markdown_literal('999')}'" in said and f"'{markdown_literal('random')}'" in said
    assert figure(at, "Loss per token")["data"][1]["name"] == "1 head off"
    set_state(at)
    assert at.session_state["off"] == "0.1" and at.session_state["ablation"] == "zero"
    assert not at.warning, [w.value for w in at.warning]


def test_heads_of_a_larger_model_are_switched_on_again_saying_so(tiny_models, tiny_1x1):
    at = open_app(PAGE, model=str(tiny_models["llama"]), text=TEXT, off="1.3")
    set_state(at, model=str(tiny_1x1))
    _healthy(at)
    assert f"Left out: '{markdown_literal('1.3')}'" in messages(at)
    assert at.session_state["off"] == ""


def test_a_masked_lm_fills_its_masks_with_heads_off(tiny_models):
    bert, text = load_model(str(tiny_models["bert"])), "The [MASK] sat on the [MASK]."
    at = open_app(PAGE, model=str(tiny_models["bert"]), text=text, off="0.1,1.3")
    _healthy(at)
    intact = fill_mask(bert, text)
    with ablated(bert, [(0, 1), (1, 3)]):
        changed = fill_mask(bert, text)
    for index, (before, after) in enumerate(zip(intact.masks, changed.masks)):
        top = before.top[0]
        assert _metric(at, f"“{markdown_literal(top.token.strip())}” (mask {index + 1})") == (
            f"{top.probability:.1%} → {after.probabilities[top.token_id]:.1%}")
    set_state(at, text="No mask here.")
    _healthy(at)
    assert "write [MASK]" in messages(at) and figure(at, "Loss per token")


def test_minilm_compares_sentence_embeddings(default_model):
    at = open_app(PAGE, text=TEXT, off="2.3,4.5")
    _healthy(at)
    with ablated(default_model, [(2, 3), (4, 5)]):
        changed = sentence_embedding(default_model, TEXT)
    expected = cosine_similarity(sentence_embedding(default_model, TEXT), changed)
    assert _metric(at, "Sentence embedding: cosine similarity") == f"{expected:.4f}"
    assert "no prediction head" in messages(at)
    assert any("no language-model head" in c.value for c in at.caption)
    assert not [f for f in figures(at) if f["layout"]["title"]["text"].startswith("Loss per token")]


def test_an_encoder_decoder_switches_heads_off_in_each_stack(tiny_models):
    t5 = load_model(str(tiny_models["t5"]))
    text = "The cat sat on the mat."
    at = open_app(PAGE, model=str(tiny_models["t5"]), text=text, off="0.1", off_cross="1.2", hw_stack="cross")
    _healthy(at)
    assert [box.label for box in at.text_input] == ["Encoder heads switched off", "Decoder heads switched off",
                                                     "Cross-attention heads switched off"]
    assert figure(at, "All heads (cross)")
    with ablated_stacks(t5, {"encoder": [(0, 1)], "cross": [(1, 2)]}):
        changed = run_attention(t5, text)
    expected = run_divergence(run_attention(t5, text), changed)
    np.testing.assert_allclose(_divergence(at), expected["cross"], atol=1e-7)
    assert any("Heads are picked by a statistic of self-attention" in c.value for c in at.caption)
    assert "encoder-decoder" in messages(at)
    set_state(at, hw_stack="encoder")
    np.testing.assert_allclose(_divergence(at), expected["encoder"], atol=1e-7)


def test_every_head_of_a_one_head_model_off(tiny_1x1):
    at = open_app(PAGE, model=str(tiny_1x1), text="The [MASK] sat.", off="0.0")
    _healthy(at)
    assert "Every head is switched off" in messages(at)
    assert "Layer: 0, the only one" in [c.value for c in at.caption]


def test_a_model_whose_heads_cannot_be_switched_off_is_refused(tmp_path):
    folder = save_tiny_longformer(tmp_path / "longformer")
    at = open_app(PAGE, model=str(folder), text=TEXT, off="0.1")
    assert not at.exception
    assert "can't be switched off or gated" in [e.value for e in at.error][0]
    assert not figures(at) and at.session_state["text"] == TEXT


def test_an_empty_text_gets_a_prompt():
    at = open_app(PAGE, text="   ")
    assert not at.exception and not at.error and "Type a text" in messages(at)


def test_importance_map_and_pruning_curve_on_demand(tiny_models, monkeypatch):
    import pages.heads_at_work

    steps = []

    def recorded(*args, progress, **kwargs):
        return real_pruning_curve(*args, progress=lambda done, total: (steps.append((done, total)),
                                                                       progress(done, total)), **kwargs)

    monkeypatch.setattr(pages.heads_at_work, "pruning_curve", recorded)
    gpt2, text = load_model(str(tiny_models["gpt2"])), "Dogs bark at night, and dogs bark at noon."
    at = open_app(PAGE, model=str(tiny_models["gpt2"]), text=text)
    assert not [f for f in figures(at) if f["layout"]["title"]["text"].startswith(("Importance", "Switching off"))]
    assert [e.label.split(":")[0] for e in at.expander] == ["Head importance (Michel et al. 2019)", "Pruning curve"]
    assert "37 runs of the model over this text, about" in at.expander[1].label  # 1 + 4 orders x 9 points (8 heads)
    set_state(at, importance=True, curve=True)
    _healthy(at)
    importance = head_importance(gpt2, [text])
    np.testing.assert_allclose(array(figure(at, "Importance of each head")["data"][0]["z"]), importance, rtol=1e-5)
    curve = real_pruning_curve(gpt2, importance, [text])
    ordered = [t for t in figure(at, "Switching off self-attention heads")["data"]
               if t["name"] == "least important first"]
    np.testing.assert_allclose(array(ordered[0]["y"]), curve.loss, rtol=1e-5)
    np.testing.assert_allclose(array(ordered[1]["y"]), curve.agreement)
    assert steps == [(i, 36) for i in range(1, 37)]
    next(b for b in at.button if b.label == "Switch off the 5 least important").click()
    set_state(at)
    assert at.session_state["off"] == heads_text(ranked_heads(importance, 5, highest=False))


def test_importance_on_the_built_in_corpus(tiny_models):
    gpt2 = load_model(str(tiny_models["gpt2"]))
    at = open_app(PAGE, model=str(tiny_models["gpt2"]), text=TEXT, importance="true",
                  importance_on="built-in corpus")
    _healthy(at)
    np.testing.assert_allclose(array(figure(at, "Importance of each head (self-attention) on built-in corpus")
                                     ["data"][0]["z"]), head_importance(gpt2, CORPUS), rtol=1e-5)


def test_a_model_without_a_loss_has_no_importance():
    at = open_app(PAGE, text=TEXT, importance="true", curve="true")
    _healthy(at)
    assert "No importance: 'minilm' has no language-model head" in messages(at)
    assert "No pruning curve" in messages(at)


def test_smollm2_switching_heads_off_moves_paris(smollm2):
    text, heads = "The capital of France is", [(1, 4), (2, 0)]
    at = open_app(PAGE, model=str(smollm2.source), text=text, off=heads_text(heads))
    _healthy(at)
    intact = next_token_predictions(smollm2, text)
    with ablated(smollm2, heads):
        changed = next_token_predictions(smollm2, text)
    paris = intact.top[0]
    assert paris.token == " Paris"
    assert _metric(at, "“Paris” (next token): intact → 2 heads off") == (
        f"{paris.probability:.1%} → {changed.probabilities[paris.token_id]:.1%}")
    assert array(figure(at, "JS divergence of each head")["data"][0]["z"]).shape == (30, 9)
