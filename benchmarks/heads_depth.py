"""Cost of the Heads page's in-depth views at 32, 128 and 512 tokens of the bundled model: head
statistics, rollout, aggregates, word merging, the CSV/NPZ exports, and the size of the offline
bertviz pages. Prints markdown tables (paste them into the README).

From the project folder:

    .venv/bin/python -m benchmarks.heads_depth [--tokens 32 128 512] [--repeats 3]
"""
import argparse
import statistics
import time

from benchmarks.heads_page import text_of
from models import load_model, run_attention
from models.analysis.aggregation import Aggregation, aggregate, rollout_layers
from models.analysis.export import matrix_csv, run_npz
from models.analysis.head_stats import head_statistics
from models.analysis.matrix_view import matrix_view
from models.analysis.words import stack_word_spans
from viz.bertviz_offline import BertvizLimits, head_view_html, model_view_html, self_attention_entries


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compute_rows(loaded, tokens: list[int], repeats: int) -> list[str]:
    rows = ["| tokens | statistics (8 metrics, all heads) | rollout (all layers) | mean of all heads "
            "| words: spans + merge | CSV of one head | NPZ of the run |", "|---|---|---|---|---|---|---|"]
    for n in tokens:
        text = text_of(loaded.tokenizer, n)
        run = run_attention(loaded, text)

        def words():
            spans = stack_word_spans(loaded, run, "self-attention", text, None)
            return matrix_view(run.tokens, run.tokens, *spans, None).apply(run.attentions)

        timings = [
            median_seconds(lambda: head_statistics(run.attentions, run.tokens, run.special_mask), repeats),
            median_seconds(lambda: rollout_layers(run.attentions), repeats),
            median_seconds(lambda: aggregate(run.attentions, Aggregation.ALL_MEAN, 0, 0), repeats),
            median_seconds(words, repeats),
            median_seconds(lambda: matrix_csv(run.attentions[0, 0], run.tokens, run.tokens), repeats),
            median_seconds(lambda: run_npz(run), repeats),
        ]
        rows.append(f"| {n} | " + " | ".join(f"{t * 1000:.0f} ms" for t in timings) + " |")
    return rows


def bertviz_rows(loaded, caps: list[int]) -> list[str]:
    rows = ["| tokens sent | head view | model view |", "|---|---|---|"]
    run = run_attention(loaded, text_of(loaded.tokenizer, max(caps)))
    layers = list(range(run.num_layers))
    for cap in caps:
        entries = self_attention_entries(run.attentions, run.tokens, None, BertvizLimits(max_tokens=cap))
        sizes = [len(head_view_html(entries, layers)), len(model_view_html(entries, layers))]
        rows.append(f"| {cap} | " + " | ".join(f"{s / 1e6:.1f} MB" for s in sizes) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    loaded = load_model("minilm")
    print("\n".join(compute_rows(loaded, args.tokens, args.repeats)))
    print()
    print("\n".join(bertviz_rows(loaded, [16, 40, 128])))


if __name__ == "__main__":
    main()
