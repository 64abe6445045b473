"""Every page but Heads on a long run (issue 19): a tiny Llama whose runs past 512 tokens are forced
to be long runs (FULL_WEIGHTS_BYTES = 0; AppTest runs the app in this process). Where a page works
from recomputed heads or tiles, what it shows equals the same computation on the run kept whole;
where it limits itself to the text's first tokens, it says so."""
import contextlib
import re

import numpy as np
import pytest

from models import load_model, run_attention
from models.compare.divergence import head_divergence
from models.core import run as core_run
from models.interventions.ablation import ablated_stacks
from models.span.mask import apply_span
from models.sparse.enforce import coverage
from models.sparse.patterns import Pattern, head_patterns
from tests.app.helpers import array, figure, messages, open_app, set_state
from tests.tiny_models import save_tiny_bigbird, save_tiny_llama, save_tiny_longformer, save_tiny_mlm_series

TEXT = " ".join(f"Line {i}: the cat sat on the mat, then looked at the dog." for i in range(24))
SHOWN = 512  # tokens a long run's heatmaps and first-token computations read


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("long_pages") / "llama")


@pytest.fixture(scope="module")
def whole(llama):
    """The same text's run with every weight kept: the reference."""
    run = run_attention(load_model(str(llama)), TEXT, tiled=False)
    assert 1000 < run.n < 1500 and run.attentions is not None
    return run


@pytest.fixture(autouse=True)
def long_runs(monkeypatch):
    monkeypatch.setattr(core_run, "FULL_WEIGHTS_BYTES", 0)


def _open(page: str, model, text: str = TEXT, **query):
    at = open_app(page, **query)
    set_state(at, model=str(model), text=text)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _lower(matrix) -> np.ndarray:
    """A causal heatmap's weights, the hidden future as 0."""
    return np.tril(np.nan_to_num(array(matrix)))


def _first_tokens_notice(what: str, n: int) -> str:
    return f"{what} keeps every weight of every head, so it runs on the first {SHOWN} tokens of this {n:,}-token text."


def test_sparse_coverage_reads_every_token_and_the_enforced_run_the_first(llama, whole):
    at = _open("pages/sparse.py", llama, view="Live model")
    patterns = head_patterns(Pattern("strided", {"l": 8, "part": "union", "causal": True}))
    expected = coverage(whole.attentions, patterns.masks(whole.n, whole.num_heads))
    np.testing.assert_allclose(array(figure(at, "Share of each head")["data"][0]["z"]), 100 * expected, atol=1e-3)
    assert _first_tokens_notice("The enforced run (dense and sparse, every head)", whole.n) in messages(at)
    dense = figure(at, "Dense: layer 0, head 0")["data"][0]["z"]
    assert array(dense).shape == (SHOWN, SHOWN)
    np.testing.assert_allclose(_lower(dense), whole.attentions[0, 0, :SHOWN, :SHOWN], atol=1e-5)  # causal: a prefix
    assert figure(at, "Enforced: layer 0, head 0")


@pytest.mark.parametrize("save,text", [(save_tiny_longformer, "the cat sat on the mat because it was warm"),
                                       (save_tiny_bigbird, " ".join(["the cat sat on the mat"] * 8))])
def test_sparse_draws_native_sparse_models_as_their_own_n_by_n_pattern(tmp_path, save, text):
    folder = save(tmp_path / "native")
    at = _open("pages/sparse.py", folder, text, view="Live model")
    run = run_attention(load_model(str(folder)), text)
    family = load_model(str(folder)).config.model_type
    assert f"({family}) computes its own sparse attention, so the weights below are the model's own sparse " \
           "pattern, drawn as n × n" in messages(at)
    weights = array(figure(at, family)["data"][0]["z"])
    assert weights.shape == (run.n, run.n)
    np.testing.assert_allclose(weights, run.attentions[0, 0], atol=1e-6)
    assert (weights == 0).any()  # pairs the model never computes


def test_adaptive_span_applies_the_span_to_every_query_of_the_recomputed_head(llama, whole):
    at = _open("pages/adaptive_span.py", llama)
    after = figure(at, "After the span mask")
    z, ramp = map(int, re.search(r"z = (\d+), R = (\d+)", after["layout"]["title"]["text"]).groups())
    expected = apply_span(whole.attentions[0, 0], z, ramp, causal=True)
    np.testing.assert_allclose(array(figure(at, "Attention mass each query loses")["data"][0]["y"]), expected.removed,
                               atol=1e-5)
    assert array(after["data"][0]["z"]).shape == (SHOWN, SHOWN)
    assert f"The heatmaps show the first {SHOWN} of this text's {whole.n:,} tokens" in messages(at)
    assert at.metric[0].value == f"{expected.zeroed_share:.0%}"


def test_scaling_reads_the_scores_of_the_first_tokens_saying_so(llama, whole):
    at = _open("pages/scaling.py", llama)
    assert _first_tokens_notice("Capturing the scores (q, k and every pre-softmax q·k)", whole.n) in messages(at)
    assert f"{SHOWN} × {SHOWN} tokens of the sidebar's text" in " ".join(c.value for c in at.caption)
    assert figure(at, f"{llama}, self-attention, layer 0, head 0: scores")


def test_compare_compares_both_models_on_the_first_tokens_saying_so(llama, whole):
    at = open_app("pages/compare.py")
    at.selectbox(key="model_b").options.append(str(llama))
    at.session_state["model_b"] = str(llama)
    set_state(at, model=str(llama), text=TEXT)
    assert not at.exception and not at.error
    assert _first_tokens_notice("Comparing A and B head by head", whole.n) in messages(at)
    a = figure(at, "A (llama): layer 0, head 0")["data"][0]["z"]
    np.testing.assert_allclose(_lower(a), whole.attentions[0, 0, :SHOWN, :SHOWN], atol=1e-5)
    np.testing.assert_allclose(array(figure(at, "JS divergence of A")["data"][0]["z"]), 0, atol=1e-6)


def test_heads_at_work_measures_every_head_over_every_query(llama, whole):
    at = _open("pages/heads_at_work.py", llama, off="0.0,0.1,0.2,0.3,0.4,0.5")
    loaded = load_model(str(llama))
    with ablated_stacks(loaded, {"self-attention": [(0, h) for h in range(6)]}, "zero"):
        ablated = run_attention(loaded, TEXT, tiled=False)
    expected = head_divergence(whole.attentions, ablated.attentions)
    assert (expected[0] == 0).all() and expected[1].min() > 1e-6  # layer 0 off changes layer 1's attention only
    np.testing.assert_allclose(array(figure(at, "JS divergence of each head")["data"][0]["z"]), expected, rtol=1e-2,
                               atol=1e-8)
    bars = figure(at, "Where it changed")["data"][0]["y"]
    assert len(array(bars)) == whole.n
    intact = figure(at, "Intact: layer 0, head 0")["data"][0]["z"]
    np.testing.assert_allclose(_lower(intact), whole.attentions[0, 0, :SHOWN, :SHOWN], atol=1e-5)
    assert figure(at, "All heads")


def test_checkpoints_attention_reads_the_first_tokens_saying_so(tmp_path):
    series = save_tiny_mlm_series(tmp_path / "series", steps=(10, 100), positions=1024)
    text = " ".join(["The capital of [MASK] is Rome."] * 100)
    at = _open("pages/checkpoints.py", "minilm", ckpt_source="folder", ckpt_folder=str(series), ckpt_text=text)
    assert "The attention of a checkpoint keeps every weight of every head, so it runs on the first 512 tokens" \
        in messages(at)
    heatmap = figure(at, "step 10: layer 0, head 0")["data"][0]["z"]
    assert array(heatmap).shape == (SHOWN, SHOWN)


def test_heads_at_work_on_a_long_text_says_so_reports_progress_and_follows_the_text(llama, monkeypatch):
    import pages._changed
    import pages.heads
    import pages.heads_at_work
    from models.core.predictions import next_token_predictions
    from models.interventions.loss import loss_terms

    seen, statistics = [], []
    real_bar, real_statistics = pages._changed.progress_bar, pages.heads.tiles.head_statistics

    @contextlib.contextmanager
    def recorded(what):
        with real_bar(what) as report:
            yield lambda done, total: (seen.append((what, done, total)), report(done, total))

    monkeypatch.setattr(pages._changed, "progress_bar", recorded)
    monkeypatch.setattr(pages.heads_at_work, "progress_bar", recorded)
    monkeypatch.setattr(pages.heads.tiles, "head_statistics", lambda *a, **k: statistics.append(1) or real_statistics(*a, **k))
    loaded = load_model(str(llama))

    def reference(text: str):
        """The next token intact and with head 1.3 off, and the loss per token with it off, every weight kept
        (no tiles)."""
        monkeypatch.setattr(core_run, "FULL_WEIGHTS_BYTES", 1 << 40)
        intact = next_token_predictions(loaded, text).top[0]
        with ablated_stacks(loaded, {"self-attention": [(1, 3)]}, "zero"):
            after = next_token_predictions(loaded, text)
            terms = loss_terms(loaded, text)  # with gradients: never the lean pass
            losses = terms.losses().detach().numpy()
        monkeypatch.setattr(core_run, "FULL_WEIGHTS_BYTES", 0)
        return f"{intact.probability:.1%} → {after.probabilities[intact.token_id]:.1%}", terms.positions.numpy(), losses

    for text in (TEXT, TEXT.replace("cat", "bird")):  # a new text: nothing of the first left
        seen.clear()
        at = _open("pages/heads_at_work.py", llama, text=text, off="1.3")
        n = len(loaded.tokenizer(text)["input_ids"])
        notice = next(str(i.value) for i in at.info if str(i.value).startswith("A long text"))
        assert f"{n:,} tokens" in notice and f"first {SHOWN} queries × {SHOWN} keys" in notice
        assert not statistics and "Pick heads by" not in [s.label for s in at.selectbox]  # folded until opened
        shift, positions, losses = reference(text)
        changed = array(figure(at, "Loss per token")["data"][1]["y"])
        assert len(changed) == n
        np.testing.assert_allclose(changed[positions], losses, rtol=1e-4, atol=1e-5)
        assert [m.value for m in at.metric if "(next token): intact → 1 head off" in m.label] == [shift]
        for what in ("Predicting, 1 head off: layer", "Scoring every token, 1 head off: layer",
                     "Running the model with the change: layer", "Comparing every head's attention: layer"):
            assert [(done, total) for w, done, total in seen if w == what] == [(1, 2), (2, 2)], (what, seen)
    set_state(at, pick_open=True)
    assert statistics and "Pick heads by" in [s.label for s in at.selectbox]
