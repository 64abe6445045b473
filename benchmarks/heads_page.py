"""Heads page cost at 32, 128 and 512 tokens of the bundled model, against the bare forward
pass and against bertviz's model_view. Prints a markdown table (paste it into the README).

    .venv/bin/python benchmarks/heads_page.py [--tokens 32 128 512] [--repeats 5]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.loading import bundled_model_path  # noqa: E402


def text_of(tokenizer, n_tokens: int) -> str:
    """A text that the tokenizer turns into exactly n_tokens (special tokens included)."""
    words = ("the cat sat on the mat because it was tired and the dog barked at it " * 64).split()
    text = " ".join(words[: n_tokens - 2])
    assert len(tokenizer(text)["input_ids"]) == n_tokens
    return text


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_forward(model, tokenizer, text: str, repeats: int) -> float:
    inputs = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        return median_seconds(lambda: model(**inputs, output_attentions=True), repeats)


def page_cost(text: str, repeats: int) -> tuple[float, int, float]:
    """(first render s, bytes of every element sent, re-render s after changing the head)."""
    from streamlit.testing.v1 import AppTest

    def fresh_render():
        import streamlit as st

        st.cache_data.clear()  # the run itself is part of the cost; the model stays loaded
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.query_params["text"] = text
        start = time.perf_counter()
        at.run()
        return at, time.perf_counter() - start

    fresh_render()  # load the model once, as the server does
    renders = [fresh_render() for _ in range(repeats)]
    at = renders[-1][0]
    assert not at.exception, at.exception
    sent = sum(node.proto.ByteSize() for node in _elements(at))
    head_switch = []
    for head in range(1, repeats + 1):
        at.slider(key="head").set_value(head)
        start = time.perf_counter()
        at.run()
        head_switch.append(time.perf_counter() - start)
    return statistics.median(t for _, t in renders), sent, statistics.median(head_switch)


def _elements(at):
    stack = [at._tree]
    while stack:
        node = stack.pop()
        if hasattr(node, "children"):
            stack.extend(node.children.values())
        elif getattr(node, "proto", None) is not None:
            yield node


def bertviz_cost(model, tokenizer, text: str) -> tuple[float, int]:
    from bertviz import model_view

    inputs = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        attentions = model(**inputs, output_attentions=True).attentions
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    start = time.perf_counter()
    html = model_view(attentions, tokens, html_action="return")
    return time.perf_counter() - start, len(html.data.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-bertviz", action="store_true", help="bertviz at 512 tokens takes ~1 GB and 15 s+")
    args = parser.parse_args()
    path = bundled_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    # float32 as the app loads it: the checkpoint is stored in float16, which is slow on a CPU
    model = AutoModel.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()
    print(f"torch threads: {torch.get_num_threads()}")
    print("| tokens | bare forward | Heads page (server) | ratio | sent to browser | change head "
          "| bertviz model_view | bertviz HTML |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.tokens:
        text = text_of(tokenizer, n)
        forward = bare_forward(model, tokenizer, text, args.repeats)
        page, sent, switch = page_cost(text, args.repeats)
        viz_s, viz_bytes = (float("nan"), 0) if args.skip_bertviz else bertviz_cost(model, tokenizer, text)
        print(f"| {n} | {forward * 1e3:.0f} ms | {page * 1e3:.0f} ms | {page / forward:.2f}x "
              f"| {sent / 1e6:.2f} MB | {switch * 1e3:.0f} ms | {viz_s:.2f} s | {viz_bytes / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
