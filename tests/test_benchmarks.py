"""Every script in benchmarks/ still runs at its smallest size and prints its table's rows.

The numbers themselves are measured by hand and go into the README; nothing here times anything.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MS, MB = r"[\d.]+ ms", r"[\d.]+ MB"


@pytest.mark.parametrize(("script", "args", "row"), [
    # bare forward, run kept, page, ratio, bytes, change head
    ("heads_page.py", ["--tokens", "32", "--repeats", "1", "--skip-bertviz"],
     rf"^\| 32 \| {MS} \| {MS} \| {MS} \| [\d.]+x \| {MB} \| {MS} \|"),
    ("heads_depth.py", ["--tokens", "32", "--repeats", "1"], rf"^\| 32( \| {MS}){{6}} \|$"),
    ("span_training.py", ["--steps", "20"], r"^\| 0\.002 \| \d+ s \| [\d.]+ → [\d.]+ \|"),
    ("load_sessions.py", ["--sessions", "1", "--rounds", "1"], r"^\| 1 \| 1 \| 0 \| [\d.]+ / [\d.]+ / [\d.]+ s \|"),
])
def test_benchmark_prints_its_table(script, args, row):
    result = subprocess.run([sys.executable, "-W", "ignore", str(BENCHMARKS / script), *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(row, result.stdout, re.MULTILINE), result.stdout


def test_long_context_benchmark_prints_its_table(tmp_path):
    from tests.tiny_models import save_tiny_llama

    model = save_tiny_llama(tmp_path / "llama")
    result = subprocess.run([sys.executable, "-W", "ignore", str(BENCHMARKS / "long_context.py"), "--model", str(model),
                             "--tokens", "256"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    seconds, gb = r"[\d.]+ s", r"[\d.]+ GB"
    row = (rf"^\| 256 \| {seconds}, \+{gb} \| {seconds} \| [\d.]+× \| {seconds} \| {gb} \| {gb} "
           rf"\| {seconds}, \+{gb} \| {seconds}, \+{gb}, \d+ MB HTML \|$")
    assert re.search(row, result.stdout, re.MULTILINE), result.stdout
