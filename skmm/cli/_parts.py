"""``skmm embed TABLE -o FOLDER``: resumable Parquet parts, here or on a Dask cluster (see skmm.dask)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from .._messages import first_and_more
from ..encoders import EmbedColumns
from ._io import CLIError, check_can_create_in
from ._rows import agree, plural


class KeepRows:
    """What each part keeps: a ``row_id`` column first; with ``skip``, not the rows that could not be read."""

    def __init__(self, policy):
        self.policy = policy

    def __call__(self, part, embeddings):
        notes = dict(embeddings.attrs.get("skmm", {}), policy=self.policy)  # a rerun may use another policy
        embeddings.insert(0, "row_id", part["row_id"].to_numpy())
        if self.policy == "skip" and notes.get("problems"):
            embeddings = embeddings[~embeddings.index.astype(str).isin(list(notes["problems"]))]
        embeddings.index = embeddings["row_id"].to_numpy()  # read back, the parts are indexed as one file's rows
        embeddings.attrs["skmm"] = notes
        return embeddings


def _describe(problems, limit=10):
    """``line 5 (photo: ...); line 9 (caption: missing value); ... and 3 more`` for {line: message}."""
    return first_and_more(list(problems.items()), lambda problem: f"line {problem[0]} ({problem[1]})", limit=limit)


def check_parts_folder(path):
    """A folder output: its parent exists; the folder is new, or holds the parts of an earlier run."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CLIError(f"output {str(path)!r} is a file: give a folder (or a .parquet / .csv file)")
    if not path.parent.is_dir():
        raise CLIError(f"output {str(path)!r}: folder {str(path.parent)!r} does not exist")
    # The parts go into the folder, which is made in its parent when new: the folder to prove writable.
    check_can_create_in(path if path.is_dir() else path.parent, f"output {str(path)!r}")
    return path


@contextlib.contextmanager
def dask_client(workers, scheduler, log, verbose=False):
    """A distributed Client for ``--workers`` / ``--scheduler``, or none (the parts run in this process)."""
    if workers is None and scheduler is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CLIError("--workers / --scheduler need dask.distributed: pip install 'skmm[dask]'") from None
    if scheduler is not None:
        log(f"joining the Dask cluster at {scheduler}")
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, ValueError) as exc:
            raise CLIError(f"--scheduler {scheduler}: cannot reach it ({exc})") from None
        with client:
            yield client
        return
    log(f"starting a local Dask cluster of {plural(workers, 'worker')}")
    quiet = logging.INFO if verbose else logging.ERROR  # the cluster's own chatter (workers closing...)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=quiet) as cluster, Client(cluster) as client:
        yield client


def _worker_lost():
    """The errors Dask raises when the workers running a part keep dying (none without dask.distributed)."""
    try:
        from distributed import KilledWorker
    except ImportError:
        return ()
    return (KilledWorker,)


def embed_parts(args, table, encoders, output, log, say):
    """Embed ``table`` into Parquet parts in ``output``; parts already written are kept."""
    try:
        import dask
        import dask.dataframe as dd
    except ImportError:
        raise CLIError("a folder output (Parquet parts) needs Dask: pip install 'skmm[dask]'") from None

    from ..dask import part_notes, write_parquet
    from ..encoders import EncodingError

    columns = [args.image_col, args.text_col]
    frame = table[columns].copy()
    frame.insert(0, "row_id", np.arange(len(frame)))
    # The index stays the table's line numbers: a problem in a part names the line, as everywhere else.
    with dask.config.set({"dataframe.convert-string": False}):  # items reach the encoders as they were read
        data = dd.from_pandas(frame, chunksize=args.rows_per_part, sort=False)
    both = EmbedColumns([(column, encoder) for encoder, column in zip(encoders, columns)])
    n_parts = data.npartitions
    with dask_client(args.workers, args.scheduler, log, args.verbose) as client:
        where = "here" if client is None else f"on {plural(len(client.scheduler_info()['workers']), 'worker')}"
        log(f"embedding {plural(len(frame), 'row')} in {plural(n_parts, 'part')} of up to "
            f"{args.rows_per_part} rows, {where}")
        try:
            computed = write_parquet(both, data, output, keep=KeepRows(args.on_error),
                                     progress=not args.quiet)
        except _worker_lost() as exc:
            raise CLIError(f"a Dask worker was lost on every try of a part ({type(exc).__name__}: {exc}); the parts "
                           "written so far are kept: run the same command again to go on") from None
        except EncodingError as exc:  # --on-error raise, in the first part with a bad row
            written = len(list(Path(output).glob("part-*.parquet")))
            problems = {str(line): f"{exc.column}: {message}" for line, message in exc.problems.items()}
            raise CLIError(f"{plural(len(problems), 'row')} of {args.table} cannot be embedded: "
                           f"{_describe(problems)}. Use --on-error skip to leave such rows out, or --on-error zero "
                           f"/ nan to fill them; the {plural(written, 'part')} written so far are kept, and a rerun "
                           "computes only the missing ones") from None
    kept = n_parts - len(computed)
    say(f"wrote {plural(len(computed), 'part')} to {output}"
        + (f" ({plural(kept, 'part')} already there from an earlier run)" if kept else "")
        + f": {plural(n_parts, 'part')}, {plural(len(frame), 'row')} in the table")
    by_policy = {}
    for notes in part_notes(output):
        by_policy.setdefault(notes.get("policy"), {}).update(notes.get("problems", {}))
    for policy, problems in by_policy.items():
        if problems:
            what = "left out (--on-error skip)" if policy == "skip" else f"filled (--on-error {policy})"
            say(f"{plural(len(problems), 'row')} could not be read and {agree(len(problems), 'was', 'were')} "
                f"{what}: {_describe(problems)}")
