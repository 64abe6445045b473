"""Heads page cost at 32, 128 and 512 tokens of the bundled model, against the bare forward
pass and against bertviz's model_view. Prints a markdown table (paste it into the README).

The page is measured on a real `streamlit run app.py` driven by Chromium: the server logs each
script run's time (the run plus every element serialised), and the bytes are the websocket
frames the browser received. Each repeat types a new text of the same length (the words
shuffled), so the model really runs.

    .venv/bin/python benchmarks/heads_page.py [--tokens 32 128 512] [--repeats 5] [--skip-bertviz]
"""
import argparse
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import torch
from playwright.sync_api import sync_playwright
from transformers import AutoModel, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from models.loading import bundled_model_path  # noqa: E402
from server import CHROMIUM_ARGS, start_server  # noqa: E402

RENDERED = re.compile(r"page Attention heads rendered in ([\d.]+) ms")
TIMEOUT_MS = 300_000


def text_of(tokenizer, n_tokens: int, shuffle: int = 0) -> str:
    """A text that the tokenizer turns into exactly n_tokens (special tokens included); each
    `shuffle` orders its words differently (WordPiece splits words alone, so the count holds)."""
    words = ("the cat sat on the mat because it was tired and the dog barked at it " * 64).split()[: n_tokens - 2]
    random.Random(shuffle).shuffle(words)
    text = " ".join(words)
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


class HeadsPage:
    """One browser session on the Heads page; counts the bytes it receives and reads the
    server's render times from its log. The page is opened once, then texts are typed in:
    so the browser has booted Streamlit's frontend and sits idle while the server works."""

    def __init__(self, browser, url: str, log_path: Path):
        self.log_path, self.received = log_path, 0
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._count))
        self.page.goto(f"{url}/?text=warm+up")
        self.page.locator('[data-testid="stPlotlyChart"] .hm').first.wait_for()
        self._wait_idle()

    def _count(self, payload) -> None:
        self.received += len(payload)

    def _wait_idle(self) -> None:
        self.page.wait_for_timeout(300)
        self.page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")
        self.page.wait_for_timeout(300)  # the last frames and log line

    def _renders_after(self, action) -> tuple[float, int]:
        """(server ms of the script runs `action` caused, bytes received meanwhile)."""
        log_mark, bytes_mark = len(self.log_path.read_text()), self.received
        action()
        self._wait_idle()
        times = [float(ms) for ms in RENDERED.findall(self.log_path.read_text()[log_mark:])]
        assert times, "the server logged no render: is EXPLORER_LOG_LEVEL=DEBUG reaching it?"
        return sum(times), self.received - bytes_mark

    def show_text(self, text: str) -> tuple[float, int]:
        box = self.page.get_by_label("Text", exact=True)
        box.fill(text)
        return self._renders_after(lambda: box.press("Control+Enter"))

    def next_head(self) -> float:
        head = self.page.locator('.st-key-head input[type="range"]')
        return self._renders_after(lambda: head.press("ArrowRight"))[0]

    def close(self) -> None:
        assert not self.page.locator('[data-testid="stException"]').count(), "the page shows an exception"
        self.context.close()


def page_cost(session: HeadsPage, tokenizer, n: int, repeats: int) -> tuple[float, int, float]:
    """Medians of (render ms of a new text, bytes sent, head change ms) over `repeats` texts."""
    renders, sent, switches = [], [], []
    for repeat in range(repeats):
        ms, size = session.show_text(text_of(tokenizer, n, shuffle=repeat + 1))
        renders.append(ms)
        sent.append(size)
        switches.append(session.next_head())
    return statistics.median(renders), int(statistics.median(sent)), statistics.median(switches)


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
    log_path = Path(tempfile.mkdtemp()) / "server.log"
    server, url = start_server(log_path, EXPLORER_LOG_LEVEL="DEBUG")
    print(f"torch threads: {torch.get_num_threads()}")
    print("| tokens | bare forward | Heads page (server) | ratio | sent to browser | change head "
          "| bertviz model_view | bertviz HTML |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            session = HeadsPage(browser, url, log_path)  # the server loads the model once
            for n in args.tokens:
                forward = bare_forward(model, tokenizer, text_of(tokenizer, n), args.repeats)
                page_ms, sent, switch_ms = page_cost(session, tokenizer, n, args.repeats)
                viz_s, viz_bytes = ((float("nan"), 0) if args.skip_bertviz
                                    else bertviz_cost(model, tokenizer, text_of(tokenizer, n)))
                print(f"| {n} | {forward * 1e3:.0f} ms | {page_ms:.0f} ms | {page_ms / 1e3 / forward:.2f}x "
                      f"| {sent / 1e6:.2f} MB | {switch_ms:.0f} ms | {viz_s:.2f} s | {viz_bytes / 1e6:.1f} MB |",
                      flush=True)
            session.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
