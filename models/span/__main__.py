"""Train an adaptive-span language model ahead of time and save it for the page.

    python -m models.span                        # the generated corpus, default settings
    python -m models.span --text notes.txt --steps 2000 --span-loss 0.004 --name lecture
"""
import argparse
import sys
from pathlib import Path

from models.span.corpus import SOURCE_NAME, generate_corpus
from models.span.lm import SpanLMConfig, SpanTrainConfig, TrainProgress, train_span_lm
from models.span.runs import runs_dir, save_run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    model, training = SpanLMConfig(), SpanTrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, help="UTF-8 text file to train on (default: the generated corpus)")
    parser.add_argument("--name", help="run name (default: the time and the text's name)")
    parser.add_argument("--steps", type=int, default=training.steps)
    parser.add_argument("--span-loss", type=float, default=training.span_loss, help="lambda; 0 turns it off")
    parser.add_argument("--layers", type=int, default=model.n_layers)
    parser.add_argument("--heads", type=int, default=model.n_heads)
    parser.add_argument("--max-span", type=int, default=model.max_span, help="S in characters")
    parser.add_argument("--ramp", type=int, default=model.ramp, help="R in characters")
    parser.add_argument("--init-span", type=float, default=model.init_fraction, help="z / S at the start")
    parser.add_argument("--seed", type=int, default=training.seed)
    return parser.parse_args(argv)


def _print_progress(progress: TrainProgress) -> None:
    spans = " ".join(f"{span:.0f}" for span in progress.spans.ravel())
    print(f"step {progress.step:>5}/{progress.total_steps}  loss {progress.lm_loss:.3f}  spans {spans}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        text = args.text.read_text(encoding="utf-8") if args.text else generate_corpus()
    except (OSError, UnicodeDecodeError) as error:
        print(f"Can't read {args.text}: {error}", file=sys.stderr)
        return 2
    source = args.text.name if args.text else SOURCE_NAME
    try:
        model_config = SpanLMConfig(n_layers=args.layers, n_heads=args.heads, max_span=args.max_span,
                                    ramp=args.ramp, init_fraction=args.init_span)
        train_config = SpanTrainConfig(steps=args.steps, span_loss=args.span_loss, seed=args.seed)
        run = train_span_lm(text, model_config, train_config, _print_progress, source=source)
        name = save_run(run, args.name)
    except ValueError as error:  # bad settings, TrainingTextError, SpanRunError
        print(error, file=sys.stderr)
        return 2
    print(f"saved {runs_dir() / name} (trained in {run.train_seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
