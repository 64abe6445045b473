"""The Sparse attention page through AppTest: every view, its controls and its link state."""
import base64
import io

import numpy as np
from PIL import Image

from models.sparse.patterns import build_pattern
from tests.app.helpers import array, figure, figures, messages, open_app, set_state
from tests.tiny_models import LONGFORMER_TEXT, save_tiny_longformer

PAGE = "pages/sparse.py"


def _image(fig: dict) -> np.ndarray:
    """The figure's image trace decoded to an [h, w, 3] array."""
    source = next(t for t in fig["data"] if t["type"] == "image")["source"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))


def _active(fig: dict) -> np.ndarray:
    return _image(fig).sum(axis=-1) < 300  # dark blue cells; the inactive grey is ~650


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _healthy(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_the_default_pattern_is_drawn_and_counted():
    at = open_app(PAGE)
    _healthy(at)
    mask = figure(at, "strided (l=8, union, causal), n = 64")
    assert (_active(mask) == build_pattern("strided", 64, l=8)).all()
    assert _metrics(at)["Active cells (query-key pairs)"] == f"{build_pattern('strided', 64, l=8).sum():,}"
    assert "l + 1" in " ".join(c.value for c in at.caption)  # the variant is stated


def test_pattern_controls_change_the_mask():
    at = open_app(PAGE)
    at.selectbox(key="pattern").set_value("sliding_window").run()
    at.number_input(key="w").set_value(3).run()
    at.number_input(key="n").set_value(20).run()
    _healthy(at)
    assert (_active(figure(at, "sliding_window (w=3")) == build_pattern("sliding_window", 20, w=3)).all()
    assert _metrics(at)["Density"] == f"{build_pattern('sliding_window', 20, w=3).mean():.2%}"


def test_link_state_sets_the_pattern_and_a_4096_mask_is_an_image():
    at = open_app(PAGE, pattern="BigBird", b="64", random_blocks="3", n="4096")
    _healthy(at)
    fig = figure(at, "bigbird (")
    assert _image(fig).shape == (1024, 1024, 3)  # 4 x 4 cells a pixel, not 16M heatmap cells
    assert fig["data"][0]["dx"] == 4
    expected = build_pattern("bigbird", 4096, b=64, random_blocks=3).sum()
    assert _metrics(at)["Active cells (query-key pairs)"] == f"{expected:,}"


def test_split_heads_show_a1_a2_and_their_union():
    at = open_app(PAGE, part="split", l="4", n="16")
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert [t.split(",")[0] for t in titles] == ["Even heads", "Odd heads", "One layer (union of the heads)"]
    a1, a2 = (_active(figure(at, name)) for name in ("Even heads", "Odd heads"))
    assert (a1 == build_pattern("strided", 16, l=4, part="A1")).all()
    assert (a2 == build_pattern("strided", 16, l=4, part="A2")).all()
    assert (_active(figure(at, "One layer")) == (a1 | a2)).all()
    assert [c.value for c in at.caption][1:4] == ["strided (l=4, A1, causal)", "strided (l=4, A2, causal)",
                                                 "strided (l=4, union, causal)"]


def test_a_second_pattern_combines_cell_by_cell():
    at = open_app(PAGE, pattern="sliding window", w="1", combine="intersection", pattern2="causal", n="12")
    _healthy(at)
    assert (_active(figures(at)[0]) == np.tril(build_pattern("sliding_window", 12, w=1))).all()


def test_bad_global_tokens_get_a_message_and_the_page_survives():
    at = open_app(PAGE, pattern="Longformer", n="16")
    at.text_input(key="global").set_value("0, x").run()
    assert "can't read x" in messages(at) and not at.exception
    at.text_input(key="global").set_value("3, 40").run()
    assert "positions 0 to 15" in messages(at) and not at.exception
    at.number_input(key="n").set_value(64).run()
    _healthy(at)


def test_growth_fits_the_exponent():
    at = open_app(PAGE, view="Growth")
    _healthy(at)
    assert figure(at, "Active cells grow like n^1.5")  # strided with l = sqrt(n)
    at.checkbox(key="sqrt_l").uncheck().run()
    assert figure(at, "Active cells grow like n^1.8")
    at.selectbox(key="pattern").set_value("sliding_window").run()
    fig = figure(at, "Active cells grow like n^1.0")
    assert array(fig["data"][1]["x"]).tolist() == [2**k for k in range(6, 15)]


def test_reachability_draws_the_path():
    at = open_app(PAGE, view="Reachability", pattern="sliding window", w="2", n="10", query="7", key="3")
    _healthy(at)
    assert figure(at, "Query 7 receives key 3 after 2 layer(s): 7 → 5 → 3")
    assert _metrics(at)["Diameter: layers until every pair connects"] == "5 layers"
    path_cells = figure(at, "Cells the path uses")["data"][1]
    assert path_cells["x"] == [5, 3] and path_cells["y"] == [7, 5]


def test_reachability_of_global_tokens_and_of_the_causal_future():
    at = open_app(PAGE, view="Reachability", pattern="Longformer", w="1", n="40")
    assert _metrics(at)["Diameter: layers until every pair connects"] == "2 layers"
    at = open_app(PAGE, view="Reachability", pattern="causal", n="10", query="2", key="6")
    assert "never reaches the future" in messages(at)
    assert "only pairs j ≤ i count" in " ".join(c.value for c in at.caption)


def test_live_model_coverage_enforced_run_and_no_mlm_head():
    at = open_app(PAGE, view="Live model")
    _healthy(at)
    cover = array(figure(at, "Share of each head")["data"][0]["z"])
    assert cover.shape == (6, 12) and (cover > 0).all() and (cover <= 100).all()
    assert figure(at, "Dense: layer 0, head 0") and figure(at, "Enforced: layer 0, head 0")
    cosine = figure(at, "How close the sparse run")["data"][0]
    assert array(cosine["y"]).shape == (7,) and array(cosine["y"])[0] == 1
    layers = [f"layer {k}" for k in range(6)]  # numbered as the layer slider (0 .. 5) and the coverage
    assert cosine["x"] == ["embeddings", *layers] and figure(at, "Share of each head")["data"][0]["y"] == layers
    assert at.slider(key="layer").max == 5
    assert "has no masked-LM head" in messages(at)
    assert any("position 0 is the first token, here “[CLS]”" in c.value.replace("\\", "") for c in at.caption)
    at.slider(key="layer").set_value(4).run()
    assert figure(at, "Dense: layer 4, head 0")


def test_live_model_names_a_decoders_own_first_token(tiny_models):
    at = open_app(PAGE, view="Live model", model=str(tiny_models["gpt2"]), text="The cat sat.")
    _healthy(at)
    assert any("position 0 is the first token, here “The”" in c.value for c in at.caption)


def test_live_model_with_full_pattern_stays_dense():
    at = open_app(PAGE, view="Live model", pattern="full")
    assert np.allclose(array(figure(at, "Share of each head")["data"][0]["z"]), 100, atol=1e-3)
    assert np.allclose(array(figure(at, "How close the sparse run")["data"][0]["y"]), 1, atol=1e-6)


def test_masked_lm_predictions_dense_vs_sparse(tiny_models):
    at = open_app(PAGE, view="Live model", pattern="sliding window", w="1", model=str(tiny_models["bert"]))
    assert "Put [MASK] in the text" in messages(at) and not at.dataframe
    set_state(at, text="The capital of Italy is [MASK].")
    _healthy(at)
    [table] = at.dataframe
    assert list(table.value.columns) == ["rank", "dense", "dense p", "sparse", "sparse p"]
    assert len(table.value) == 5


def test_global_tokens_beyond_the_text_are_explained_on_the_live_model():
    at = open_app(PAGE, view="Live model", pattern="Longformer", **{"global": "0, 200"})
    assert "positions 0 to" in messages(at) and not at.exception


def test_a_native_sparse_model_is_drawn_as_its_own_pattern_on_the_live_view(tmp_path):
    folder = save_tiny_longformer(tmp_path / "longformer")
    at = open_app(PAGE, view="Live model")
    set_state(at, model=str(folder), text=LONGFORMER_TEXT)
    _healthy(at)
    assert "(longformer) computes its own sparse attention" in messages(at)
    assert not any(f["layout"].get("title", {}).get("text", "").startswith("Enforced") for f in figures(at))
    assert array(figure(at, "longformer")["data"][0]["z"]).shape == (12, 12)  # n x n, not n x (window + 1)
    assert at.session_state["text"] == LONGFORMER_TEXT


def test_cost_is_measured_and_read_honestly():
    at = open_app(PAGE, view="Cost")
    _healthy(at)
    fig = figure(at, "Dense vs masked attention")
    assert {t["name"] for t in fig["data"]} == {"dense", "masked", "block-sparse (estimate)"}
    text = " ".join(m.value for m in at.markdown)
    assert "saves nothing" in text and "At n = 2048" in text
    table = at.dataframe[0].value
    assert (table["masked MB"] > table["dense MB"]).all()
