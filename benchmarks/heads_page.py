"""Heads page cost at 32, 128 and 512 tokens of a model (the bundled minilm by default), against
the bare forward pass and against bertviz's model_view. Prints a markdown table (paste it into
the README).

The bare forward is the same model with transformers' own eager attention, output_attentions=True
(every weight), in this process; "run, kept" is models.run_attention, its run kept as the app's
cache keeps it.

The page is measured on a real `streamlit run app.py`, opened over Streamlit's websocket
protocol (a browser on the same cores would compete with the server it times): the server time
runs from the rerun request to the message that the script finished, as a browser sees it, so
it holds the run, every element serialised and Streamlit's own work around the script (such as
a garbage collection after each run, which the app's config switches off); the bytes are the
messages received. Each repeat opens a new text of the same length (the words shuffled), so
the model really runs, then that text with another head, as a user moving the head slider.

Each timed step starts after a pause, as a person's clicks do.

From the project folder:

    .venv/bin/python -m benchmarks.heads_page [--model minilm] [--tokens 32 128 512] [--repeats 11] [--skip-bertviz]
"""
import argparse
import asyncio
import copy
import random
import statistics
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from models import load_model, run_attention
from models.core.loading import DEFAULT_MODEL
from tests.helpers import streamlit_process

TIMEOUT_S = 300
IDLE_S = 0.5  # before each timed step, as between a person's clicks
FINISHED = ForwardMsg.FINISHED_SUCCESSFULLY


def text_of(tokenizer, n_tokens: int, shuffle: int = 0) -> str:
    """A text that the tokenizer turns into exactly n_tokens (special tokens included); each
    `shuffle` orders its words differently. Only words that are one token, alone or after a space,
    are used, so the count holds in any order (WordPiece and byte-level BPE alike)."""
    specials = len(tokenizer("the")["input_ids"]) - len(tokenizer("the", add_special_tokens=False)["input_ids"])
    words = [word for word in "the cat sat on the mat because it was tired and the dog barked at it".split()
             if all(len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1 for w in (word, " " + word))]
    words = (words * n_tokens)[: n_tokens - specials]
    random.Random(shuffle).shuffle(words)
    text = " ".join(words)
    assert len(tokenizer(text)["input_ids"]) == n_tokens
    return text


def forward_seconds(model, tokenizer, text: str) -> float:
    inputs = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        start = time.perf_counter()
        model(**inputs, output_attentions=True)
        return time.perf_counter() - start


def run_seconds(loaded, text: str, kept: list) -> float:
    """models.run_attention on a new text whose run is kept, as the app's cache keeps it."""
    start = time.perf_counter()
    kept.append(run_attention(loaded, text))
    return time.perf_counter() - start


async def _session(url: str):
    return await websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                    max_size=None)


async def _render(url: str, query: dict[str, str]) -> tuple[float, int]:
    """A new session opening the Heads page with `query`, as a browser would. Returns the ms
    from the request to the script's finished message, and the bytes received meanwhile."""
    async with await _session(url) as ws:
        request = BackMsg()
        request.rerun_script.query_string = urllib.parse.urlencode(query)
        start = time.perf_counter()
        await ws.send(request.SerializeToString())
        received = 0
        while True:
            data = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            received += len(data)
            message = ForwardMsg.FromString(data)
            if message.WhichOneof("type") == "script_finished" and message.script_finished == FINISHED:
                return 1e3 * (time.perf_counter() - start), received


class HeadsPageClient:
    """Opens the Heads page over Streamlit's own websocket protocol, without a browser: a browser
    on the same 2 cores would compete with the server it is meant to time.

    One idle session stays connected throughout, like a user's open tab: when the last session
    leaves, Streamlit drops its compiled pages, and every render would pay for compiling them."""

    def __init__(self, url: str):
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.idle_tab = self.loop.run_until_complete(_session(url))

    def open(self, **query: str) -> tuple[float, int]:
        """(server ms until the script finished, bytes received), from an idle server."""
        time.sleep(IDLE_S)
        return self.loop.run_until_complete(_render(self.url, query))

    def close(self) -> None:
        self.loop.run_until_complete(self.idle_tab.close())
        self.loop.close()


@dataclass
class Row:
    forward_s: float  # the bare forward pass (eager, output_attentions), in this process
    run_s: float  # models.run_attention, results kept
    page_ms: float  # the server's render of the Heads page for a new text
    sent: int  # bytes of that render's messages
    switch_ms: float  # the server's render of the same text with another head


def measure(client: HeadsPageClient, model, loaded, n: int, repeats: int) -> Row:
    """Medians over `repeats` rounds. Each round times the bare forward, a kept run and the page,
    one after the other, so a slow phase of this shared machine weighs on all of them alike.

    Each round's page opens a text the server hasn't seen (the model really runs), then the
    same text with another head: the run is cached, as when a user moves the head slider."""
    tokenizer, kept = loaded.tokenizer, []
    forward_seconds(model, tokenizer, text_of(tokenizer, n))  # warm-up: allocation, kernel selection
    rounds = []
    for repeat in range(repeats):
        time.sleep(IDLE_S)
        forward = forward_seconds(model, tokenizer, text_of(tokenizer, n, shuffle=1000 + repeat))
        run = run_seconds(loaded, text_of(tokenizer, n, shuffle=2000 + repeat), kept)
        text = text_of(tokenizer, n, shuffle=repeat + 1)
        page_ms, sent = client.open(model=loaded.spec, text=text)
        switch_ms = client.open(model=loaded.spec, text=text, head=str(1 + repeat % (loaded.num_heads - 1)))[0]
        rounds.append(Row(forward, run, page_ms, sent, switch_ms))
    return Row(*(statistics.median(getattr(r, f.name) for r in rounds) for f in fields(Row)))


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
    parser.add_argument("--model", default=DEFAULT_MODEL, help="anything load_model takes (default: minilm)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--skip-bertviz", action="store_true", help="bertviz at 512 tokens takes ~1 GB and 15 s+")
    args = parser.parse_args()
    loaded = load_model(args.model)  # float32, as the app loads it
    tokenizer, model = loaded.tokenizer, copy.deepcopy(loaded.model)
    model.set_attn_implementation("eager")  # transformers' own, for the bare forward
    with streamlit_process(Path(tempfile.mkdtemp())) as server:
        print(f"{args.model}, torch threads: {torch.get_num_threads()}")
        print("| tokens | bare forward | run, kept | Heads page (server) | ratio | sent to browser | change head "
              "| bertviz model_view | bertviz HTML |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        client = HeadsPageClient(server.url)
        client.open(model=loaded.spec, text="warm up")  # the server loads the model once
        for n in args.tokens:
            row = measure(client, model, loaded, n, args.repeats)
            viz_s, viz_bytes = ((float("nan"), 0) if args.skip_bertviz
                                else bertviz_cost(model, tokenizer, text_of(tokenizer, n)))
            print(f"| {n} | {row.forward_s * 1e3:.0f} ms | {row.run_s * 1e3:.0f} ms | {row.page_ms:.0f} ms "
                  f"| {row.page_ms / 1e3 / row.forward_s:.2f}x | {row.sent / 1e6:.2f} MB | {row.switch_ms:.0f} ms "
                  f"| {viz_s:.2f} s | {viz_bytes / 1e6:.1f} MB |", flush=True)
        client.close()


if __name__ == "__main__":
    main()
