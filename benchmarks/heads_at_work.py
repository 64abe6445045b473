"""Heads at work on SmolLM2 (or another causal LM): head importance on the induction probe and on the
built-in corpus, the pruning curve, the time to prune and to quantize, and forward time, memory and
share of zero weights of the original, L1-pruned and int8 models. Prints markdown tables.

    .venv/bin/python -m benchmarks.heads_at_work [--model smollm2] [--tokens 128] [--repeats 5] [--amount 0.2]
"""
import argparse
import time

from models import load_model
from models.analysis.induction import induction_probe, probe_token_range
from models.core.predictions import next_token_predictions
from models.interventions.compression import pruned_l1, quantized_int8
from models.interventions.footprint import forward_seconds, memory_bytes, zero_share
from models.interventions.importance import CORPUS, head_importance, pruning_curve

PROMPT = "The capital of France is"
SENTENCE = "the cat sat on the mat because it was tired and the dog barked at it "


def timed(fn):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def text_of(tokenizer, n_tokens: int) -> str:
    """About n_tokens tokens of plain English (cut at a token boundary, then decoded)."""
    ids = tokenizer(SENTENCE * n_tokens, add_special_tokens=False)["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


def cost_rows(loaded, amount: float) -> tuple[list[str], dict]:
    low, high = probe_token_range(loaded)  # a tiny test model's vocabulary is smaller than SmolLM2's 49,152
    probe = induction_probe(loaded, low=low, high=high)
    _, probe_s = timed(lambda: head_importance(loaded, [probe]))
    importance, corpus_s = timed(lambda: head_importance(loaded, CORPUS))
    curve, curve_s = timed(lambda: pruning_curve(loaded, importance))
    pruned, prune_s = timed(lambda: pruned_l1(loaded, amount))
    quantized, quantize_s = timed(lambda: quantized_int8(loaded))
    rows = ["| step | time |", "|---|---|",
            f"| head importance, induction probe ({len(probe)} tokens) | {probe_s:.1f} s |",
            f"| head importance, built-in corpus ({len(CORPUS)} sentences) | {corpus_s:.1f} s |",
            f"| pruning curve, corpus ({len(curve.removed)} points x {1 + len(curve.random_loss)} orders) "
            f"| {curve_s:.1f} s |",
            f"| L1 pruning {amount:.0%} (deep copy included) | {prune_s:.1f} s |",
            f"| int8 quantization (deep copy included) | {quantize_s:.1f} s |"]
    return rows, {"original": loaded, f"L1-pruned {amount:.0%}": pruned, "int8 (torchao)": quantized}


def model_rows(models: dict, n_tokens: int, repeats: int) -> list[str]:
    text = text_of(next(iter(models.values())).tokenizer, n_tokens)
    rows = [f"| model | forward, {n_tokens} tokens | memory | zero weights | next token after “{PROMPT}” |",
            "|---|---|---|---|---|"]
    for name, loaded in models.items():
        top = next_token_predictions(loaded, PROMPT, top_k=1).top[0]
        rows.append(f"| {name} | {forward_seconds(loaded, text, repeats) * 1000:.0f} ms "
                    f"| {memory_bytes(loaded) / 1e6:.0f} MB | {zero_share(loaded):.1%} "
                    f"| “{top.token}” {top.probability:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="a causal LM: smollm2, or a spec for load_model")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--amount", type=float, default=0.2)
    args = parser.parse_args()
    loaded = load_model(args.model)
    rows, models = cost_rows(loaded, args.amount)
    print("\n".join(rows))
    print()
    print("\n".join(model_rows(models, args.tokens, args.repeats)))


if __name__ == "__main__":
    main()
