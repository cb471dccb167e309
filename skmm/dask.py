"""Embedding at scale on Dask: any skmm encoder or fusion over the partitions of a Dask DataFrame.

Two routes, both on whatever scheduler is active (a ``distributed.Client``,
else Dask's threads):

- :func:`transform` returns a lazy Dask DataFrame of embeddings, aligned with
  the input's index and partitions: chain it, ``.persist()`` it, or write it
  with ``.to_parquet()`` as any Dask DataFrame.
- :func:`write_parquet` writes one Parquet file per partition into a folder,
  each atomically, and is **resumable**: a rerun skips the parts already
  written, so a job cut short (a worker lost, a cluster stopped) computes only
  what is missing. ``skmm embed TABLE -o FOLDER --workers N`` uses it.

Each worker process loads each backbone once (skmm's model registry) and
receives the estimator as one small pickle (weights that have a name are
reloaded from it, not shipped). Give the encoders a ``cache`` folder on a
worker-local disk to keep embeddings across jobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._files import atomic_write

_MANIFEST = "_skmm_parts.json"
_NOTES_KEY = b"skmm"


def _fitted(estimator, data, fit_rows):
    try:
        check_is_fitted(estimator)
        if get_tags(estimator).requires_fit:  # a stateless one passes the check, and learns its input's names
            return estimator
    except NotFittedError:
        pass
    # An encoder's fit reads no data; a fusion learns its scaling from these rows (fit it yourself, with y, for
    # supervised alignment).
    return clone(estimator).fit(data.head(fit_rows, npartitions=-1))


def _frame(part, estimator, names):
    out = estimator.transform(part)
    frame = pd.DataFrame(np.asarray(out, dtype=np.float32), index=part.index, columns=names)
    frame.attrs.update(getattr(out, "attrs", {}))  # notes about the rows (see write_parquet)
    return frame


def transform(estimator, data, *, fit_rows=1000):
    """Embed a Dask DataFrame (or Series) with ``estimator``, partition by partition.

    Parameters
    ----------
    estimator : transformer
        An :class:`~skmm.ImageEncoder` or :class:`~skmm.TextEncoder` (for a
        Series, or a one-column frame), a :class:`~skmm.ModalityFusion`, or
        any scikit-learn transformer of the partitions (a ``ColumnTransformer``
        of encoders, say). An unfitted one is fitted on the first
        ``fit_rows`` rows (encoders read nothing there; a fusion learns its
        scaling from them).
    data : dask.dataframe.DataFrame or dask.dataframe.Series
        The table (image paths, bytes, arrays; texts).
    fit_rows : int, default=1000
        Rows an unfitted ``estimator`` is fitted on.

    Returns
    -------
    embeddings : dask.dataframe.DataFrame
        One float32 column per feature (named as ``get_feature_names_out``),
        the index and partitions of ``data``.

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> table = dd.from_pandas(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), npartitions=2)
    >>> transform(FunctionTransformer(lambda x: x * 2, feature_names_out="one-to-one"), table).compute()
         x
    0  2.0
    1  4.0
    2  6.0
    """
    from dask import delayed

    fitted = _fitted(estimator, data, fit_rows)
    names = [str(name) for name in fitted.get_feature_names_out()]
    meta = pd.DataFrame({name: np.empty(0, dtype=np.float32) for name in names},
                        index=data._meta.index)
    # One task holds the estimator: each worker fetches its pickle once, not once per partition.
    shared = delayed(fitted, pure=True)
    return data.map_partitions(_frame, shared, names, meta=meta)


# Parameters that change how fast or how visibly embeddings are made, not what they are: a rerun may change them.
# The error policy too, so that a run stopped by a bad row can go on under another policy: parts already
# written keep the policy they were written with (their notes name the rows it touched).
_RUNTIME_PARAMS = frozenset({"progress", "batch_size", "num_workers", "cache", "verbose", "n_jobs", "on_error"})


def _identity(value):
    """An estimator's parameters less the runtime ones, and what it learned, nested estimators included
    (hashable by joblib): a fusion fitted again on other rows is another run."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        params = {name: _identity(param) for name, param in value.get_params(deep=False).items()
                  if name not in _RUNTIME_PARAMS}
        learned = {name: _identity(attribute) for name, attribute in vars(value).items()
                   if name.endswith("_") and not name.startswith("_")}
        return type(value).__qualname__, params, learned
    if isinstance(value, (list, tuple)):
        return [_identity(item) for item in value]
    if isinstance(value, dict):
        return {key: _identity(item) for key, item in value.items()}
    return value


def _manifest(estimator, data):
    """What the parts depend on: the partitions, the data (Dask's token of it), the estimator, its features."""
    from dask.base import tokenize

    identity = _identity(estimator)
    try:
        digest = joblib.hash(identity)
    except Exception:  # e.g. a lambda inside a FunctionTransformer: Dask's tokenizer reads functions too
        digest = tokenize(identity)
    return {"parts": int(data.npartitions), "data": tokenize(data), "estimator": digest,
            "features": [str(name) for name in estimator.get_feature_names_out()]}


_DIFFERENCES = {"parts": "it was cut into {previous} parts, this run into {now} (another number of rows per part)",
                "data": "its table was another one, or the same one changed or cut into parts of another size "
                        "(or Dask was upgraded since)",
                "estimator": "its settings were others (model, image size, precision, device...)",
                "features": "its settings were others (model, image size, precision, device...)"}


def _check_manifest(folder, manifest):
    path = folder / _MANIFEST
    has_parts = next(folder.glob("part-*.parquet"), None) is not None
    if not path.exists() and any(not p.name.startswith(".") for p in folder.iterdir()):
        raise ValueError(f"{folder} is not empty and holds no parts written by skmm: choose a new or empty folder")
    if not has_parts:  # nothing written yet (a first run stopped before its first part): start afresh
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))
        return
    previous = json.loads(path.read_text())
    for key, why in _DIFFERENCES.items():
        if previous.get(key) != manifest[key]:
            raise ValueError(f"{folder} holds the parts of another run: "
                             f"{why.format(previous=previous.get(key), now=manifest[key])}; choose another "
                             "folder, or delete this one to start again")


def _part_path(folder, number, n_parts):
    # Zero-padded to the widest number, so that the names sort in the parts' order.
    return Path(folder) / f"part-{number:0{max(5, len(str(n_parts - 1)))}d}.parquet"


def _complete(path):
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except (OSError, ValueError):
        return False


def _write_part(estimator, part, names, path, keep):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _frame(part, estimator, names)
    frame = keep(part, frame) if keep is not None else frame
    notes = frame.attrs.get("skmm", {})
    table = pa.Table.from_pandas(frame, preserve_index=True)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _NOTES_KEY: json.dumps(notes)})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return len(frame)


def part_notes(folder):
    """The notes each part of ``folder`` was written with (what the estimator's output carried in
    ``attrs["skmm"]``, e.g. the rows it could not read), in part order; ``{}`` for a part without."""
    import pyarrow.parquet as pq

    notes = []
    for path in sorted(Path(folder).glob("part-*.parquet")):
        metadata = pq.read_schema(path).metadata or {}
        notes.append(json.loads(metadata.get(_NOTES_KEY, b"{}")))
    return notes


def write_parquet(estimator, data, folder, *, fit_rows=1000, keep=None, progress=False):
    """Embed ``data`` into one Parquet file per partition in ``folder``; a rerun computes only missing parts.

    Parameters
    ----------
    estimator, data, fit_rows
        As for :func:`transform`.
    folder : str or path
        A new or empty folder (created if needed), or one holding an earlier
        run's parts; on a cluster, every worker must reach it at the same
        path (a shared file system). ``part-00000.parquet``... in the order of
        ``data``'s partitions, each with ``data``'s index and the embeddings;
        ``dask.dataframe.read_parquet(folder)`` reads them back in order.
        A manifest records the settings: a folder holding the parts of another
        table or estimator is an error, not a mix (runtime options such as
        ``batch_size``, ``progress`` or ``on_error`` may change between runs).
        When the estimator's output carries ``attrs["skmm"]`` (a dict, e.g. the
        rows it could not read), each part keeps it: see :func:`part_notes`.
    keep : callable, optional
        ``keep(part, embeddings) -> embeddings`` run on each part before it is
        written (the CLI drops rows it was asked to skip).
    progress : bool, default=False
        A progress bar over the parts to compute.

    Returns
    -------
    computed : list of int
        The numbers of the parts computed by this call (empty on a rerun of a finished job).
    """
    import dask

    folder = Path(folder).resolve()  # workers write there: the same path must reach the same folder on each
    folder.mkdir(parents=True, exist_ok=True)
    fitted = _fitted(estimator, data, fit_rows)
    manifest = _manifest(fitted, data)
    _check_manifest(folder, manifest)
    for stale in folder.glob(".part-*.tmp"):  # left by a worker killed while writing
        stale.unlink(missing_ok=True)
    n_parts = data.npartitions
    todo = [n for n in range(n_parts) if not _complete(_part_path(folder, n, n_parts))]
    shared = dask.delayed(fitted, pure=True)
    parts = data.to_delayed()
    tasks = [dask.delayed(_write_part)(shared, parts[n], manifest["features"], str(_part_path(folder, n, n_parts)),
                                       keep) for n in todo]
    bar = tqdm(total=len(tasks), unit="part", desc="parts", disable=not progress or not tasks)
    client = _active_client()
    if client is not None:  # the cluster's workers, as many parts at a time as they have threads
        from distributed import as_completed

        for future in as_completed(client.compute(tasks)):
            future.result()
            bar.update()
    else:  # here, a part at a time: the encoders use every core on their own
        for task in tasks:
            task.compute(scheduler="synchronous")
            bar.update()
    bar.close()
    return todo


def _active_client():
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client
        return None
