"""The span page's training at its default settings, on 2 threads: how long it takes and whether
it trains honestly (the loss falls, the spans move, heads end with different spans), with the
span loss on and off. Prints a markdown table (paste it into the README).

From the project folder:

    .venv/bin/python -m benchmarks.span_training [--steps 1200] [--threads 2]
"""
import argparse

import numpy as np
import torch

from models.span.corpus import generate_corpus
from models.span.lm import SpanLMConfig, SpanTrainConfig, train_span_lm


def row(span_loss: float, steps: int) -> str:
    run = train_span_lm(generate_corpus(), SpanLMConfig(), SpanTrainConfig(steps=steps, span_loss=span_loss))
    loss, spans = run.history.lm_loss, run.history.spans_array()
    moved = np.abs(spans[-1] - spans[0]).max()
    final = " ".join(f"{s:.0f}" for s in spans[-1].ravel())
    return (f"| {span_loss:g} | {run.train_seconds:.0f} s | {loss[0]:.2f} → {loss[-1]:.3f} | {moved:.0f} "
            f"| {spans[-1].min():.0f} – {spans[-1].max():.0f} | {final} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=SpanTrainConfig().steps)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.steps} steps, {args.threads} threads, default model ({SpanLMConfig()})\n")
    print("| λ | time | LM loss (nats/char) | largest span move | final spans (min – max) | final spans, L0 then L1 |")
    print("|---|---|---|---|---|---|")
    for span_loss in (SpanTrainConfig().span_loss, 0.0):
        print(row(span_loss, args.steps), flush=True)


if __name__ == "__main__":
    main()
