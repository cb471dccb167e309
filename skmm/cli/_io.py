"""Files of the command line: tables in and out, models saved and loaded, paths checked before any work."""

from __future__ import annotations

from pathlib import Path

from .._files import atomic_write, check_writable


class CLIError(Exception):
    """A problem the user can fix; printed as one ``skmm CMD: error: ...`` line, exit code 1."""


TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
MODEL_FORMATS = {".skops": "skops", ".joblib": "joblib", ".pkl": "joblib", ".pickle": "joblib"}


def _suffix_names(formats):
    return ", ".join(sorted(formats))


def check_output(path, formats, what):
    """The output path, checked before any work: a known suffix, an existing folder, not a folder itself."""
    path = Path(path)
    if path.suffix.lower() not in formats:
        raise CLIError(f"{what} {str(path)!r}: unsupported format {path.suffix or '(no suffix)'!r} "
                       f"(use {_suffix_names(formats)})")
    return check_folder_for(path, what)


def check_folder_for(path, what):
    """``path`` can be written: its folder exists and takes a new file, and it is not itself a folder.

    Proven, not guessed from permission bits: the temporary file the atomic
    writer will need is created there and removed (see ``skmm._files.check_writable``).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"{what} {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"{what} {str(path)!r} is a folder, not a file")
    check_can_create_in(folder, f"{what} {str(path)!r}")
    return path


def check_can_create_in(folder, named):
    """A file can be created in ``folder``, proven with the atomic writer's own temporary file (made, removed).

    Else a CLIError that starts with ``named``, the user's path: never the temporary file's.
    """
    try:
        check_writable(Path(folder) / "skmm-output")
    except OSError as exc:
        raise CLIError(f"{named}: cannot create a file in folder {str(folder)!r} ({exc.strerror or exc})") from None


def read_table(path, raw=False):
    """A CSV / TSV / Parquet table with at least one row; its index names the rows as the user counts them.

    For a CSV the index is the file's line number (the header is line 1), named
    ``"line"``, so messages say "line 12"; for Parquet, the row number from 1, named ``"row"``.
    ``raw``: a CSV's values as the text they are (no type guessing, "NA" stays "NA"), to write them back
    unchanged.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CLIError(f"table {str(path)!r} does not exist")
    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CLIError(f"table {str(path)!r}: unsupported format {path.suffix!r} (use {_suffix_names(TABLE_FORMATS)})")
    try:
        if kind == "parquet":
            table = pd.read_parquet(path)
        else:
            options = dict(dtype=str, keep_default_na=False) if raw else {}
            table = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", **options)
    except UnicodeDecodeError as exc:
        raise CLIError(f"cannot read table {str(path)!r}: it is not UTF-8 text ({exc.reason} at byte "
                       f"{exc.start}); save it as UTF-8 (texts in other encodings can be decoded with "
                       "skmm.datasets.decode_text_bytes first)") from None
    except Exception as exc:  # a parse error: say which file
        raise CLIError(f"cannot read table {str(path)!r}: {exc}") from exc
    if len(table) == 0:
        raise CLIError(f"table {str(path)!r} has no rows (only a header)")
    start = 2 if kind != "parquet" else 1
    table.index = pd.RangeIndex(start, start + len(table), name="line" if kind != "parquet" else "row")
    return table


def check_columns(table, columns, table_path):
    import difflib

    missing = [c for c in columns if c not in table.columns]
    if missing:
        names = [str(name) for name in table.columns]
        close = {c: difflib.get_close_matches(str(c), names, n=1) for c in missing}
        hints = "; ".join(f"{c!r}: did you mean {match[0]!r}?" for c, match in close.items() if match)
        raise CLIError(f"column(s) {missing} not in {table_path} ({hints + '; ' if hints else ''}its columns: "
                       f"{list(table.columns)})")


def write_table(frame, path):
    """Write ``frame`` (its columns only: the row labels are the CLI's, not the user's) as CSV or Parquet."""
    kind = TABLE_FORMATS[Path(path).suffix.lower()]
    if kind == "parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, sep="\t" if kind == "tsv" else ","))


def save_model(model, path):
    """skops for ``.skops`` (loading checks the types), joblib for ``.joblib`` / ``.pkl`` (trusted files only)."""
    from .. import persistence

    if MODEL_FORMATS[Path(path).suffix.lower()] == "skops":
        atomic_write(path, lambda tmp: persistence.dump(model, tmp))
    else:
        import joblib

        atomic_write(path, lambda tmp: joblib.dump(model, tmp))


def load_model(path):
    """A model written by ``skmm fit``, with errors that say what the file is instead."""
    from .. import persistence

    path = Path(path)
    kind = MODEL_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CLIError(f"model {str(path)!r} is not a model file (a file written by 'skmm fit': "
                       f"{_suffix_names(MODEL_FORMATS)})")
    if not path.is_file():
        raise CLIError(f"model {str(path)!r} does not exist")
    try:
        if kind == "skops":
            return persistence.load(path)
        import joblib

        return joblib.load(path)
    except persistence.UntrustedTypesError as exc:
        raise CLIError(str(exc)) from exc
    except Exception as exc:  # not a zip / pickle, truncated, from another program
        raise CLIError(f"model {str(path)!r} cannot be read as a {kind} model ({type(exc).__name__}: {exc}); "
                       "is it a file written by 'skmm fit'?") from exc
