"""Native sparse attention (Longformer, BigBird) drawn as query x key: hand-placed values, the
models' own outputs and a recomputation from a layer's queries and keys."""
import math

import numpy as np
import pytest
import torch

from models import RunError, load_model, run_attention
from models.core.native_sparse import NativeSparseError, bigbird_square, longformer_square, self_attentions
from tests.tiny_models import LONGFORMER_TEXT as TWELVE
from tests.tiny_models import save_tiny_bigbird, save_tiny_longformer


def test_longformer_band_and_global_tokens_land_where_they_belong():
    n, window, globals_ = 12, 4, np.array([0, 7])
    local = np.zeros((1, n, 2 + window + 1))  # [heads, n, x + w + 1]: two global keys, then keys i-2 ... i+2
    for i in range(n):
        local[0, i, :2] = [1000 + i, 2000 + i]
        for d in range(-2, 3):
            local[0, i, 2 + 2 + d] = 100 * i + (i + d)  # transformers leaves 0 on global keys: overwritten below
    global_rows = np.zeros((1, n, 2))  # [heads, n, x]: column g is global token g's row
    global_rows[0, :, 0], global_rows[0, :, 1] = 3000 + np.arange(n), 4000 + np.arange(n)
    square = longformer_square(local, global_rows, globals_)[0]
    assert square[3].tolist() == [1003, 301, 302, 303, 304, 305, 0, 2003, 0, 0, 0, 0]  # keys 1 ... 5, globals
    assert square[11].tolist() == [1011, 0, 0, 0, 0, 0, 0, 2011, 0, 1109, 1110, 1111]  # the band stops at the end
    assert square[1].tolist() == [1001, 101, 102, 103, 0, 0, 0, 2001, 0, 0, 0, 0]  # key 0 is global
    assert square[0].tolist() == (3000 + np.arange(n)).tolist()  # a global token's row: all keys
    assert square[7].tolist() == (4000 + np.arange(n)).tolist()
    with pytest.raises(NativeSparseError, match="even window"):
        longformer_square(np.zeros((1, n, 6)), None, np.array([], int))


@pytest.fixture(scope="module")
def longformer(tmp_path_factory):
    return load_model(str(save_tiny_longformer(tmp_path_factory.mktemp("longformer") / "model")))


def test_longformer_runs_come_out_square_on_its_band(longformer):
    run = run_attention(longformer, TWELVE)
    assert run.n == 12 and run.attentions.shape == (2, 4, 12, 12)
    np.testing.assert_allclose(run.attentions.sum(-1), 1, atol=1e-5)
    offsets = np.abs(np.arange(12)[:, None] - np.arange(12)[None, :])
    assert np.all(run.attentions[..., offsets > 2] == 0)
    ids = longformer.tokenizer(TWELVE, return_tensors="pt")
    with torch.no_grad():
        band = longformer.model(**ids, output_attentions=True).attentions[1][0, 3].numpy()  # [n, w + 1]
    np.testing.assert_allclose([run.attentions[1, 3, 5, 5 + d] for d in range(-2, 3)], band[5], rtol=1e-6)


def test_longformer_global_tokens_get_full_rows_and_columns(longformer):
    ids = longformer.tokenizer(TWELVE, return_tensors="pt")
    global_mask = torch.zeros_like(ids["input_ids"])
    global_mask[0, [0, 7]] = 1
    with torch.no_grad():
        outputs = longformer.model(**ids, global_attention_mask=global_mask, output_attentions=True)
    square = self_attentions(longformer.model, outputs, 12, global_mask)
    np.testing.assert_allclose(square.sum(-1), 1, atol=1e-5)
    assert np.all(square[:, :, [0, 7], :] > 0) and np.all(square[:, :, :, [0, 7]] > 0)
    with pytest.raises(NativeSparseError, match="global tokens"):
        self_attentions(longformer.model, outputs, 12, None)


@pytest.fixture(scope="module")
def bigbird(tmp_path_factory):
    return load_model(str(save_tiny_bigbird(tmp_path_factory.mktemp("bigbird") / "model")))


def _block_sparse_reference(bigbird, hidden: torch.Tensor) -> np.ndarray:
    """Layer 0's weights recomputed from its q and k: each middle query block sees the first and last
    blocks and its 3-block window; in eval mode the random block is the first block again."""
    n, b, r = hidden.shape[0], 4, 1
    attention = bigbird.model.base_model.encoder.layer[0].attention.self
    q, k = (layer(hidden).view(n, 4, 8).transpose(0, 1) for layer in (attention.query, attention.key))
    scores = q @ k.transpose(-1, -2) / math.sqrt(8)  # [heads, n, n]
    blocks = n // b
    copies = torch.zeros(blocks, blocks)  # how often each key block appears in a query block's softmax
    copies[0], copies[-1] = 1, 1  # global query blocks see everything
    for i in range(1, blocks - 1):
        copies[i, [0, blocks - 1, i - 1, i, i + 1]] = 1
        copies[i, 0] += r
    weights = copies.repeat_interleave(b, 0).repeat_interleave(b, 1) * torch.exp(scores - scores.amax(-1, True))
    return (weights / weights.sum(-1, keepdim=True)).numpy()


def test_bigbird_block_sparse_weights_match_a_recomputation_from_q_and_k(bigbird):
    torch.manual_seed(1)
    ids = torch.randint(1000, 2000, (1, 64))
    with torch.no_grad():
        outputs = bigbird.model.base_model(input_ids=ids, output_attentions=True, output_hidden_states=True)
        expected = _block_sparse_reference(bigbird, outputs.hidden_states[0][0])
    assert bigbird.model.base_model.attention_type == "block_sparse"
    raw = outputs.attentions[0][0].numpy()
    assert raw.sum(-1).min() < 0.99  # as returned, the random block's share is missing
    square = self_attentions(bigbird.model, outputs, 64, None)
    np.testing.assert_allclose(square[0], expected, atol=1e-6)
    with pytest.raises(NativeSparseError, match="add up to 1"):
        bigbird_square(raw[None], 64, 4, 2)  # counting the random blocks wrong is caught


def test_bigbird_runs_are_square_and_cut_to_the_text(bigbird):
    run = run_attention(bigbird, " ".join(["word"] * 60))  # 62 tokens, padded to 64 inside the model
    assert run.n == 62 and run.attentions.shape == (2, 4, 62, 62)
    np.testing.assert_allclose(run.attentions.sum(-1), 1, atol=1e-5)
    with pytest.raises(RunError, match="needs at least 29 tokens and this text has 12"):
        run_attention(bigbird, TWELVE)  # transformers would switch the shared model to full attention, weightless
    assert bigbird.model.base_model.attention_type == "block_sparse"
