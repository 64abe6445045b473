"""Every script in benchmarks/ still runs at its smallest size and prints its table's rows.

The numbers themselves are measured by hand and go into the README; nothing here times anything.
"""
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

MS, MB = r"[\d.]+ ms", r"[\d.]+ MB"


@pytest.mark.parametrize(("benchmark", "args", "row"), [
    # bare forward, run kept, page, ratio, bytes, change head
    ("heads_page", ["--tokens", "32", "--repeats", "1", "--skip-bertviz"],
     rf"^\| 32 \| {MS} \| {MS} \| {MS} \| [\d.]+x \| {MB} \| {MS} \|"),
    ("heads_depth", ["--tokens", "32", "--repeats", "1"], rf"^\| 32( \| {MS}){{6}} \|$"),
    ("span_training", ["--steps", "20"], r"^\| 0\.002 \| \d+ s \| [\d.]+ → [\d.]+ \|"),
    ("load_sessions", ["--sessions", "1", "--rounds", "1"], r"^\| 1 \| 1 \| 0 \| [\d.]+ / [\d.]+ / [\d.]+ s \|"),
])
def test_benchmark_prints_its_table(benchmark, args, row):
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", f"benchmarks.{benchmark}", *args],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(row, result.stdout, re.MULTILINE), result.stdout


def test_the_smollm2_load_benchmark_prints_its_table(tiny_models, tmp_path):
    from tests.tiny_models import write_llama_gguf

    path = write_llama_gguf(tiny_models["llama"], tmp_path / "tiny.gguf")  # stands in for SmolLM2's 98 MB
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "benchmarks.smollm2_load", "--gguf", str(path),
                             "--repeats", "1"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("first: convert to a float32 folder, then load", "dequantizing the weights to float32",
                "loading the converted folder", "later: the converted folder", "transformers' own GGUF load"):
        assert re.search(rf"^\| (&nbsp;)*{re.escape(row)}.* \| [\d.]+ s \|$", result.stdout, re.MULTILINE), row


def test_heads_at_work_prints_its_tables(tiny_models):
    args = ["--model", str(tiny_models["llama"]), "--tokens", "16", "--repeats", "1"]
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "benchmarks.heads_at_work", *args],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^\| head importance, induction probe \(101 tokens\) \| [\d.]+ s \|$", result.stdout, re.M)
    for model in ("original", "L1-pruned 20%", "int8 \\(torchao\\)"):
        row = rf"^\| {model} \| {MS} \| {MB} \| [\d.]+% \| “.*” [\d.]+ \|$"
        assert re.search(row, result.stdout, re.M), result.stdout


def test_long_context_benchmark_prints_its_table(tmp_path):
    from tests.tiny_models import save_tiny_llama

    model = save_tiny_llama(tmp_path / "llama")
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "benchmarks.long_context", "--model", str(model),
                             "--tokens", "256"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    seconds, gb = r"[\d.]+ s", r"[\d.]+ GB"
    row = (rf"^\| 256 \| {seconds}, \+{gb} \| {seconds} \| [\d.]+× \| {seconds} \| {gb} \| {gb} "
           rf"\| {seconds}, \+{gb} \| {seconds}, \+{gb}, \d+ MB HTML \|$")
    assert re.search(row, result.stdout, re.MULTILINE), result.stdout
