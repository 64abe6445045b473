"""models.export: the run as NPZ and one matrix as CSV, read back with numpy and the csv module."""
import csv
import io

import numpy as np

from models import load_model, run_attention
from models.analysis.export import matrix_csv, run_npz


def test_npz_holds_every_layer_and_head_with_the_tokens(tiny_models):
    run = run_attention(load_model(str(tiny_models["bert"])), "The cat sat.", "It slept.")
    data = np.load(io.BytesIO(run_npz(run)))
    np.testing.assert_array_equal(data["attentions"], run.attentions)
    assert data["attentions"].dtype == np.float32 and data["attentions"].shape == (2, 4, run.n, run.n)
    assert data["tokens"].tolist() == run.tokens
    np.testing.assert_array_equal(data["segment_ids"], run.segment_ids)
    np.testing.assert_array_equal(data["special_mask"], run.special_mask)
    assert not data["causal"] and str(data["model_spec"]) == run.model_spec
    assert "cross_attentions" not in data


def test_npz_of_an_encoder_decoder_keeps_all_three_stacks(tiny_models):
    run = run_attention(load_model(str(tiny_models["t5"])), "The cat sat.", "Le chat.")
    data = np.load(io.BytesIO(run_npz(run)))
    np.testing.assert_array_equal(data["cross_attentions"], run.cross_attentions)
    np.testing.assert_array_equal(data["decoder_attentions"], run.decoder_attentions)
    assert data["decoder_tokens"].tolist() == run.decoder_tokens


def test_csv_has_a_row_per_query_and_quotes_awkward_tokens():
    matrix = np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32)
    tokens = ['=HYPERLINK("x")', 'a,"b"']
    rows = list(csv.reader(io.StringIO(matrix_csv(matrix, tokens, tokens))))
    assert rows[0] == ["query \\ key", '0 =HYPERLINK("x")', '1 a,"b"']  # a leading position: never a formula
    assert rows[1] == ['0 =HYPERLINK("x")', "0.25", "0.75"] and rows[2] == ['1 a,"b"', "1", "0"]
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], dtype=np.float32), matrix)
