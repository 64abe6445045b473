"""A run's attention as files: NPZ of every layer and head, CSV of one matrix.

    from models.analysis.export import run_npz, matrix_csv
    Path("run.npz").write_bytes(run_npz(run))
    data = np.load("run.npz"); data["attentions"].shape  # [layers, heads, n, n]
"""
import csv
import io

import numpy as np

from models.core.run import AttentionRun


def run_npz(run: AttentionRun) -> bytes:
    """NPZ with attentions [layers, heads, n, n] float32, tokens [n] str (as the tokenizer writes them),
    labels [n] str (as a reader sees them), segment_ids, special_mask, causal, model_spec, and for
    encoder-decoders decoder_tokens, decoder_labels, decoder_attentions, cross_attentions.

    Uncompressed: attention weights hardly compress, and 512 tokens would take seconds.
    """
    arrays = {
        "attentions": run.attentions,
        "tokens": np.array(run.tokens, dtype=str),
        "labels": np.array(run.labels, dtype=str),
        "segment_ids": run.segment_ids,
        "special_mask": run.special_mask,
        "causal": np.array(run.causal),
        "model_spec": np.array(run.model_spec, dtype=str),
    }
    if run.decoder_tokens is not None:
        arrays |= {
            "decoder_tokens": np.array(run.decoder_tokens, dtype=str),
            "decoder_labels": np.array(run.decoder_labels, dtype=str),
            "decoder_attentions": run.decoder_attentions,
            "cross_attentions": run.cross_attentions,
        }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def position_labels(tokens: list[str]) -> list[str]:
    """'3 cat': unique per position, and a leading digit keeps spreadsheets from reading a formula."""
    return [f"{i} {t}" for i, t in enumerate(tokens)]


def matrix_csv(matrix: np.ndarray, query_tokens: list[str], key_tokens: list[str]) -> str:
    """One [q, k] matrix as CSV: a header of key labels, then one row per query label. Give the
    labels a reader sees (AttentionRun.labels, WordSpans.words), not the tokenizer's pieces."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["query \\ key", *position_labels(key_tokens)])
    for label, row in zip(position_labels(query_tokens), matrix):
        writer.writerow([label, *(f"{w:.6g}" for w in row)])
    return out.getvalue()
