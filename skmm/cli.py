"""The ``skmm`` command line."""

from __future__ import annotations

import argparse
import sys


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skmm",
        description="Multimodal (image + text) classification with scikit-learn pipelines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="generate image+text data, embed it with the offline models, compare pipelines by CV",
        description="Generate a small image+text dataset, embed it with the offline default models "
                    "(EfficientNet-Lite0, all-MiniLM-L6-v2) and print cross-validated scores of "
                    "text-only, image-only, early-fusion and late-fusion pipelines.")
    demo.add_argument("--n-samples", type=int, default=300, help="rows to generate (default: 300)")
    demo.add_argument("--cv", type=int, default=5, help="cross-validation folds (default: 5)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    demo.add_argument("--batch-size", type=int, default=64, help="items per forward pass (default: 64)")
    demo.add_argument("--cache", default="auto", help="embedding cache directory (default: in memory)")
    demo.add_argument("--no-tune-malloc", action="store_true",
                      help="leave glibc malloc as it is (by default the CLI tunes it for CPU inference)")
    return parser


def main(argv=None):
    """Entry point of the ``skmm`` console script; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if not getattr(args, "no_tune_malloc", True):
        from .performance import tune_malloc

        tune_malloc()
    if args.command == "demo":
        from .demo import run_demo

        run_demo(n_samples=args.n_samples, cv=args.cv, device=args.device, batch_size=args.batch_size,
                 cache=args.cache)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
