"""``skmm embed TABLE -o FOLDER``: resumable Parquet parts, here or on a Dask cluster (see skmm.dask)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone

from ._io import CLIError
from ._rows import plural


class EmbedColumns(TransformerMixin, BaseEstimator):
    """Each ``(column, encoder)``'s raw embeddings side by side, named ``<column>__<feature>`` (what
    ``skmm embed`` writes; ``ModalityFusion`` would also rescale them). Fitting reads no item."""

    def __init__(self, encoders):
        self.encoders = encoders

    def fit(self, X, y=None):
        self.encoders_ = [(column, clone(encoder).fit(X[column])) for column, encoder in self.encoders]
        return self

    def transform(self, X):
        return np.hstack([encoder.transform(X[column]) for column, encoder in self.encoders_])

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"{column}__{name}" for column, encoder in self.encoders_
                           for name in encoder.get_feature_names_out()], dtype=object)


class KeepRows:
    """What each part keeps: a ``row_id`` column first; with ``skip``, only the rows embedded in full."""

    def __init__(self, skip):
        self.skip = skip

    def __call__(self, part, embeddings):
        embeddings.insert(0, "row_id", part["row_id"].to_numpy())
        embeddings.index = part["row_id"].to_numpy()  # read back, the parts are indexed as a single file's rows
        if self.skip:
            embeddings = embeddings[np.isfinite(embeddings.iloc[:, 1:].to_numpy()).all(axis=1)]
        return embeddings


def check_parts_folder(path):
    """A folder output: its parent exists; the folder is new, or holds the parts of an earlier run."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CLIError(f"output {str(path)!r} is a file: give a folder (or a .parquet / .csv file)")
    if not path.parent.is_dir():
        raise CLIError(f"output {str(path)!r}: folder {str(path.parent)!r} does not exist")
    return path


@contextlib.contextmanager
def dask_client(workers, scheduler, log):
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
        except OSError as exc:
            raise CLIError(f"--scheduler {scheduler}: cannot reach it ({exc})") from None
        with client:
            yield client
        return
    log(f"starting a local Dask cluster of {plural(workers, 'worker')}")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def embed_parts(args, table, encoders, output, log, say):
    """Embed ``table`` into Parquet parts in ``output``; parts already written are kept."""
    import dask
    import dask.dataframe as dd
    from ..dask import write_parquet

    columns = [args.image_col, args.text_col]
    frame = table[columns].copy()
    frame.insert(0, "row_id", np.arange(len(frame)))
    # The index stays the table's line numbers: an error in a part names the line, as everywhere else.
    with dask.config.set({"dataframe.convert-string": False}):  # items reach the encoders as they were read
        data = dd.from_pandas(frame, chunksize=args.rows_per_part, sort=False)
    both = EmbedColumns([(column, encoder) for encoder, column in zip(encoders, columns)])
    n_parts = data.npartitions
    with dask_client(args.workers, args.scheduler, log) as client:
        where = "here" if client is None else f"on {plural(len(client.scheduler_info()['workers']), 'worker')}"
        log(f"embedding {plural(len(frame), 'row')} in {plural(n_parts, 'part')} of up to "
            f"{args.rows_per_part} rows, {where}")
        computed = write_parquet(both, data, output, keep=KeepRows(args.on_error == "skip"), progress=not args.quiet)
    kept = n_parts - len(computed)
    say(f"wrote {plural(len(computed), 'part')} to {output}"
        + (f" ({plural(kept, 'part')} already there from an earlier run)" if kept else "")
        + f": {plural(n_parts, 'part')}, {plural(len(frame), 'row')} in the table")
