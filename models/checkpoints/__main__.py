"""Train a small BERT masked LM from scratch and keep checkpoints at chosen steps.

    python -m models.checkpoints --text corpus.txt --out runs/mine --save-at 100,1000,10000
    python -m models.checkpoints --dataset wikitext:wikitext-2-raw-v1 --out runs/wiki --pack
    python -m models.checkpoints --demo            # the offline demo series, cached
    torchrun --nproc-per-node 4 -m models.checkpoints ...   # same flags, several GPUs
"""
import argparse
import sys
from pathlib import Path

from models.checkpoints.demo import ensure_demo_series
from models.checkpoints.trainer import CORPUS_TOKENIZER, MLMTrainConfig, train_mlm
from models.core.loading import bundled_model_path


def parse_steps(text: str) -> list[int]:
    steps = sorted({int(s) for s in text.replace(" ", "").split(",") if s})
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError("--save-at takes positive steps, e.g. 100,1000,10000")
    return steps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.checkpoints", description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="build the offline demo series (cached)")
    parser.add_argument("--text", type=Path, help="training text, one example per line")
    parser.add_argument("--dataset", help="a Hugging Face dataset with a text column, e.g. wikitext:wikitext-2-raw-v1")
    parser.add_argument("--out", type=Path, help="output folder for the tokenizer and checkpoint-N folders")
    parser.add_argument("--save-at", type=parse_steps, default=[100, 1000], help="comma-separated steps")
    parser.add_argument("--tokenizer", default=CORPUS_TOKENIZER,
                        help=f"'{CORPUS_TOKENIZER}' (word vocab of the text), 'bundled' (bert-base-uncased), "
                             "a folder or a hub id")
    defaults = MLMTrainConfig(output_dir=Path("."), save_at=[1])
    for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "max_length", "batch_size",
                 "warmup_steps", "logging_steps", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("learning_rate", "mlm_probability"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    parser.add_argument("--pack", action="store_true", help="pack the text into blocks of --max-length tokens")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> MLMTrainConfig:
    if args.out is None:
        raise SystemExit("Give --out FOLDER (or --demo).")
    tokenizer = str(bundled_model_path()) if args.tokenizer == "bundled" else args.tokenizer
    return MLMTrainConfig(
        output_dir=args.out, save_at=args.save_at, text_file=args.text, dataset=args.dataset,
        tokenizer=tokenizer, vocab_size=args.vocab_size, hidden_size=args.hidden_size,
        num_layers=args.num_layers, num_heads=args.num_heads, max_length=args.max_length, pack=args.pack,
        batch_size=args.batch_size, learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
        mlm_probability=args.mlm_probability, logging_steps=args.logging_steps, seed=args.seed, quiet=args.quiet,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.demo:
        print(ensure_demo_series(seed=args.seed))
        return
    print(train_mlm(config_from_args(args)))


if __name__ == "__main__":
    main(sys.argv[1:])
