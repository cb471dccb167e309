"""The ``skmm`` command line: demo, fit, predict, embed.

Every argument and output path is checked before any model work. Exit codes:
0 success; 1 a problem with the data or a file, printed as one
``skmm CMD: error: ...`` line that names the file, the column and the CSV
line; 2 a usage error (argparse's own). ``SKMM_DEBUG=1`` shows the traceback
instead.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import warnings

from ._io import CLIError, read_table, write_table  # noqa: F401  (re-exported for scripts)
from ._parser import build_parser

__all__ = ["CLIError", "main"]


def _demo(args, log, say):
    from ..demo import run_demo

    run_demo(n_samples=args.n_samples, cv=args.cv, device=args.device, batch_size=args.batch_size,
             cache=args.cache, output_dir=args.output_dir, out=say)


def main(argv=None):
    """Entry point of the ``skmm`` console script; returns the exit code."""
    from .. import __version__

    parser = build_parser(__version__)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if not args.no_tune_malloc:
        from ..performance import tune_malloc

        tune_malloc()  # the command line owns its process (see skmm.performance)
    from ..encoders import EncodingError
    from . import _commands

    def say(message):
        print(message, flush=True)

    def log(message):
        if args.verbose:
            print(f"[skmm {args.command}] {message}", flush=True)

    command = {"demo": _demo, "fit": _commands.fit, "predict": _commands.predict, "embed": _commands.embed}
    try:
        with warnings.catch_warnings():
            from ..encoders import EncodingWarning  # here: `skmm --help` does not wait for torch

            # Rows an encoder could not read are reported by the command itself, once, by their CSV line.
            warnings.simplefilter("ignore", EncodingWarning)
            command[args.command](args, log, say)
    except KeyboardInterrupt:
        resume = (" (the parts written so far are kept: run the same command again to go on)"
                  if getattr(args, "parts_folder", False) else "")
        print(f"skmm {args.command}: interrupted{resume}", file=sys.stderr)
        return 130
    except (CLIError, EncodingError, ValueError, OSError, sqlite3.Error) as exc:
        if os.environ.get("SKMM_DEBUG"):
            raise
        message = " ".join(str(exc).split())  # one line
        print(f"skmm {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
