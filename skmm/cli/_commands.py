"""What ``skmm fit``, ``predict`` and ``embed`` do, once their arguments and paths are checked."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from ._io import (MODEL_FORMATS, TABLE_FORMATS, CLIError, check_can_create_in, check_columns, check_folder_for,
                  check_output, load_model, read_table, save_model, write_table)
from ._models import baseline_classifier, build_model, model_settings, saved_model_parts
from ._rows import (Readability, agree, check_readability, check_target, describe_missing, enforce, folds_for,
                    non_numbers, plural, present, warn_if_texts_are_paths)


def check_device(device):
    """The device exists on this machine: one rule, a one-line error, for every command."""
    from .._device import resolve_device

    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as exc:
        raise CLIError(f"--device {device}: {exc}") from None


def _encoder_options(args, folder, on_error):
    common = dict(device=args.device, batch_size=args.batch_size, precision=args.precision or "auto",
                  cache=args.cache, progress=not args.quiet, on_error="raise" if on_error == "skip" else on_error)
    return common, dict(root=str(folder))


def make_encoders(args, folder, on_error="raise"):
    """The image and text encoders the command line asks for; relative image paths are the table's folder's."""
    from .. import ImageEncoder, TextEncoder

    common, image_only = _encoder_options(args, folder, on_error)
    return (ImageEncoder(args.image_model, **common, **image_only), TextEncoder(args.text_model, **common))


def _folder(table):
    return Path(table).resolve().parent


@contextlib.contextmanager
def _timed(timings, step):
    """Record how long the ``with`` block took under ``step`` (the report's timings table)."""
    start = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - start


def _report_folder(args, output):
    """The folder ``skmm fit`` writes its report to: ``--report``, else ``<output>_report`` beside the model."""
    report_folder = Path(args.report) if args.report else output.with_name(output.stem + "_report")
    if report_folder.exists() and not report_folder.is_dir():
        raise CLIError(f"report folder {str(report_folder)!r} is a file")
    if report_folder.is_dir():  # the files go in it
        check_can_create_in(report_folder, f"report folder {str(report_folder)!r}")
    else:  # made in its parent
        check_folder_for(report_folder, "report folder")
    return report_folder


def _table_columns(args):
    """``--table-cols``: a list of distinct names, none of which is the image, text or target column."""
    if args.table_cols is None:
        return []
    columns = [column.strip() for column in args.table_cols.split(",")]
    if not all(columns):
        raise CLIError(f"--table-cols {args.table_cols!r} has an empty column name")
    twice = sorted({column for column in columns if columns.count(column) > 1})
    if twice:
        raise CLIError(f"--table-cols {args.table_cols!r} names {twice} twice")
    roles = {args.image_col: "--image-col", args.text_col: "--text-col", args.target: "--target"}
    for column in columns:
        if column in roles:
            raise CLIError(f"--table-cols: {column!r} is already the {roles[column]} column")
    return columns


def _table_present(X, columns):
    """The rows with at least one of the table columns filled (the others are imputed); None without any."""
    return present(X[columns]) if columns else None


def _note_missing_table(found, X, columns, table_rows):
    """Rows with none of the table columns filled: reported like a missing image or text."""
    if columns:
        found.missing[", ".join(columns)] = ("table value", list(X.index[~table_rows]))


def _labelled_rows(args, notes):
    """The table's rows that have a label, as ``(X, y)``; a note says how many had none."""
    table = read_table(args.table)
    args.table_columns = _table_columns(args)  # checked and parsed once; the steps of fit read it
    check_columns(table, [args.image_col, args.text_col, *args.table_columns, args.target], args.table)
    labelled = table[present(table[args.target])]  # the one rule of what is missing, labels included
    if len(labelled) < len(table):
        notes.append(f"{plural(len(table) - len(labelled), 'row')} without a label in {args.target!r} left out")
    y = labelled[args.target].to_numpy()
    check_target(y, args.target)  # before any model work
    return labelled[[args.image_col, args.text_col, *args.table_columns]], y


def _non_numbers_by_policy(args, X, columns, verb):
    """``columns`` of ``X`` as numbers; a cell that is not one is, by ``--on-error``, an error naming every such
    cell (raise), its row to leave out (skip: returned as reasons) or a missing value, imputed (zero, nan).
    Returns ``(X, reasons, note)``: the note says what was done, by line. ``verb``: "used", "predicted"."""
    reasons, numbers = non_numbers(X, columns)
    X = X.assign(**numbers)
    if not reasons:
        return X, {}, None
    described = Readability(X.index.name or "row", reasons=reasons).describe(limit=10)
    if args.on_error == "raise":
        raise CLIError(f"{plural(len(reasons), 'row')} of {args.table} cannot be {verb}: {described}. Use "
                       "--on-error skip to leave them out, or --on-error zero to take such values as missing")
    if args.on_error == "skip":
        return X, reasons, f"{plural(len(reasons), 'row')} left out (--on-error skip): {described}"
    return X, {}, (f"{plural(len(reasons), 'row')} {agree(len(reasons), 'has', 'have')} table values that are not "
                   f"numbers, taken as missing and imputed (--on-error {args.on_error}): {described}")


def _table_numbers(args, X, y, notes):
    """Table columns of numbers that a few cells ("?", "unknown") made text: numbers again, those cells by
    ``--on-error`` as ``skmm predict`` takes them (else the column would be one-hot encoded as categories).
    Returns ``(X, y)``."""
    import pandas as pd

    def mostly_numbers(values):
        there = values[present(values)]
        parsed = pd.to_numeric(there, errors="coerce").notna()
        return parsed.sum() >= 2 and parsed.mean() >= 0.9

    suspects = [column for column in args.table_columns
                if not pd.api.types.is_numeric_dtype(X[column]) and mostly_numbers(X[column])]
    X, left_out, note = _non_numbers_by_policy(args, X, suspects, "used")
    notes.extend([note] if note else [])
    keep = ~X.index.isin(list(left_out))
    return X[keep], y[keep]


def _unreadable_as_missing(X, found, policy):
    """Under ``--on-error zero`` / ``nan``, each value that cannot be read made missing: what the help promises,
    and what every model then reads alike (a stack's one-modality members answer their class shares there)."""
    if policy not in ("zero", "nan"):
        return X
    return X.assign(**{column: X[column].where(usable | ~present(X[column]))
                       for column, usable in found.usable.items()})


def _usable_rows(args, X, y, modalities, folder, notes, timings, log):
    """Check and embed every value; apply ``--on-error``. Returns ``(X, y, usable)``: the rows kept, and per
    column which of them have a value that could be read."""
    log(f"checking and embedding {len(X)} images ({args.image_col!r}) and texts ({args.text_col!r})")
    with _timed(timings, "embedding (each image and text once)"):
        table_rows = _table_present(X, args.table_columns)
        found = check_readability(modalities, X, policy=args.on_error, other_present=table_rows)
    note = enforce(found, policy=args.on_error, verb="used", table=args.table, folder=folder)
    X = _unreadable_as_missing(X, found, args.on_error)
    usable = dict(found.usable)
    if table_rows is not None:
        usable["table"] = table_rows
    _note_missing_table(found, X, args.table_columns, table_rows)
    notes.extend(([note] if note else []) + describe_missing(found, "used", 2 + bool(args.table_columns)))
    if found.reasons and args.on_error == "skip":
        keep = ~X.index.isin(list(found.reasons))
        X, y, usable = X[keep], y[keep], {column: ok[keep] for column, ok in usable.items()}
        check_target(y, args.target)
    return X, y, usable


def _single_modality_baselines(args, estimator, encoders, X, y, usable, folds, log):
    """Cross-validated scores of the same classifier on each modality alone, over the rows that have it (and,
    with table columns, on the image and text fused without them)."""
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from .. import ModalityFusion, TabularEncoder
    from ._report import cross_validate

    image, text = encoders
    singles = [("text only", ModalityFusion([("text", text, args.text_col)]), usable[args.text_col]),
               ("image only", ModalityFusion([("image", image, args.image_col)]), usable[args.image_col])]
    if args.table_columns:
        # Its columns standardised, as a user would fit the table alone: scaled as one block of a fusion (unit
        # total variance), ten Pokémon columns scored 3 points less with LogisticRegression().
        singles.append(("table only", ColumnTransformer([("table", TabularEncoder(), args.table_columns)]),
                        usable["table"]))
        # What the table columns add: the same fusion without them.
        media = ModalityFusion([("image", image, args.image_col), ("text", text, args.text_col)], method=args.fusion)
        singles.append(("image + text", media, usable[args.image_col] | usable[args.text_col]))
    baselines = []
    for name, features, has in singles:
        single = Pipeline([("features", features), ("clf", clone(estimator))])
        position = np.cumsum(has) - 1  # each kept row's position among the rows that have this modality
        kept = [(position[train[has[train]]], position[test[has[test]]]) for train, test in folds]
        baselines.append(cross_validate(name, single, X[has], y[has], kept, log))
    return baselines


def _cross_validation(args, n_folds, pipeline, encoders, X, y, usable, timings, log, say):
    """``n_folds`` folds of the fused model and of each modality alone, printed; returns ``(fused, baselines)``."""
    from sklearn.model_selection import StratifiedKFold

    from ._report import cross_validate

    with _timed(timings, f"cross-validation ({n_folds} folds, fused and baselines)"):
        folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, y.astype(str)))
        name = "stack" if args.estimator == "stack" else f"{args.fusion} fusion"
        fused = cross_validate(name, pipeline, X, y, folds, log)
        baselines = _single_modality_baselines(args, baseline_classifier(pipeline), encoders, X, y, usable, folds,
                                               log)
    say(f"{n_folds}-fold CV on {plural(len(X), 'row')} (accuracy / macro-F1 / weighted F1):")
    for result in (fused, *baselines):
        say(f"  {result.name:<16} {result.summary('accuracy')}  {result.summary('f1_macro')}  "
            f"{result.summary('f1_weighted')}" + (f"  ({plural(result.rows, 'row')})" if result.rows < len(X) else ""))
    return fused, baselines


def fit(args, log, say):
    """``skmm fit TABLE -o MODEL``: check, embed, cross-validate, fit on every row, save, and write a report."""
    from ._report import write_report

    output = check_output(args.output, MODEL_FORMATS, "output")
    report_folder = _report_folder(args, output)
    check_device(args.device)
    notes, timings = [], {}
    X, y = _labelled_rows(args, notes)
    X, y = _table_numbers(args, X, y, notes)  # cheap: before any embedding
    folder = _folder(args.table)
    warn_if_texts_are_paths(X[args.text_col], folder, args.text_col, say)
    image, text = make_encoders(args, folder, args.on_error)
    X, y, usable = _usable_rows(args, X, y, [(image, args.image_col), (text, args.text_col)], folder, notes,
                                timings, log)
    n_folds, folds_note = folds_for(y, args.target, args.cv)  # on the rows kept, before any model is fitted
    notes.extend([folds_note] if folds_note else [])
    for note in notes:
        say(note)
    pipeline = build_model(args, image, text, args.table_columns)
    fused, baselines = None, []
    if n_folds:
        fused, baselines = _cross_validation(args, n_folds, pipeline, (image, text), X, y, usable, timings, log, say)
    log("fitting on every row")
    with _timed(timings, "final fit"):
        pipeline.fit(X, y)
    save_model(pipeline, output)
    say(f"wrote {output}")
    settings = {"table": args.table, "image column": args.image_col, "text column": args.text_col,
                "target": args.target, "table columns": ", ".join(args.table_columns) or "none",
                "image model": args.image_model, "text model": args.text_model,
                **model_settings(args, pipeline), "folds": n_folds,
                "on error": args.on_error}
    paths = write_report(report_folder, fused=fused, baselines=baselines, X=X, y=y, classes=pipeline.classes_,
                         settings=settings, timings=timings, notes=notes,
                         skipped_because="--cv 0" if args.cv == 0 else "too few rows in a class, see above")
    say(f"wrote the report to {report_folder}/ ({', '.join(p.name for p in paths)})")


def apply_runtime(encoders, args, folder, on_error):
    """The loaded model's encoders (see :func:`saved_model_parts`) run where, how and on what the command line
    says."""
    common, image_only = _encoder_options(args, folder, on_error)
    if args.precision is None:  # the precision the model was fitted with
        del common["precision"]
    for encoder in encoders:
        if hasattr(encoder, "move_to"):  # an skmm encoder
            encoder.set_params(**{k: v for k, v in common.items() if k != "device"})
            if "root" in encoder.get_params():
                encoder.set_params(**image_only)
            # Also when the device stays: the precision and its cache keys follow the command line.
            encoder.move_to(args.device if args.device != "auto" else encoder.device_)


def predict(args, log, say):
    output = check_output(args.output, TABLE_FORMATS, "output")
    if output.resolve() == Path(args.table).resolve():
        raise CLIError(f"output {str(output)!r} is the input table: choose another file, the input is kept as it is")
    check_device(args.device)
    model = load_model(args.model)
    modalities, encoders = saved_model_parts(model, args.model)
    columns = list(dict.fromkeys(column for _, _, branch in modalities
                                 for column in ([branch] if isinstance(branch, str) else branch)))
    # One encoder a column and model: a stack's clones of it share its cache keys.
    media = [(encoder, column) for _, encoder, column in modalities if hasattr(encoder, "check_items")]
    table = read_table(args.table)
    check_columns(table, columns, args.table)
    classes = model.classes_
    new_columns = ["prediction", *(f"proba_{label}" for label in classes)] + (["reason"] if args.on_error == "skip"
                                                                               else [])
    clash = [column for column in new_columns if column in table.columns]
    if clash:
        raise CLIError(f"{args.table} already has column(s) {clash}, which the output would overwrite: rename them "
                       "(or predict from the original table)")
    folder = _folder(args.table)
    apply_runtime(encoders, args, folder, args.on_error)
    numeric = [column for _, encoder, _ in modalities for column in getattr(encoder, "numeric_", [])]
    # Cheap, before any embedding; under --on-error skip the rows are left out below, with the others.
    X, not_numbers, numbers_note = _non_numbers_by_policy(args, table[columns], numeric, "predicted")
    log(f"checking and embedding {len(X)} rows")
    tabular = [column for column in columns if column not in {column for _, column in media}]
    table_rows = _table_present(X, tabular)
    found = check_readability(media, X, policy=args.on_error, fitted=True, other_present=table_rows)
    for label, why in not_numbers.items():  # --on-error skip: left out, with the reason
        found.reasons[label] = f"{found.reasons[label]}; {why}" if label in found.reasons else why
    found.reasons = {label: found.reasons[label] for label in X.index if label in found.reasons}
    note = enforce(found, policy=args.on_error, verb="predicted", table=args.table, folder=folder)
    X = _unreadable_as_missing(X, found, args.on_error)
    _note_missing_table(found, X, tabular, table_rows)
    missing_notes = describe_missing(found, "predicted", len(modalities)) + (
        [numbers_note] if numbers_note and not not_numbers else [])
    skipped = set(found.reasons) if args.on_error == "skip" else set()
    good = ~X.index.isin(list(skipped))
    probabilities = np.full((len(X), len(classes)), np.nan)
    if good.any():
        log(f"predicting {int(good.sum())} rows")
        probabilities[good] = model.predict_proba(X[good])
    out = read_table(args.table, raw=True)  # the input's columns written back as they were read
    predictions = np.empty(len(X), dtype=object)
    predictions[good] = classes[probabilities[good].argmax(axis=1)]
    out["prediction"] = predictions
    for i, label in enumerate(classes):
        out[f"proba_{label}"] = probabilities[:, i]
    if args.on_error == "skip":
        out["reason"] = [found.reasons.get(label, "") if label in skipped else "" for label in X.index]
    for line in ([note] if note else []) + missing_notes:
        say(line)
    write_table(out, output)
    say(f"wrote {plural(int(good.sum()), 'prediction')} for {plural(len(out), 'row')} to {output}")


def embed(args, log, say):
    import pandas as pd

    from ..encoders import EmbedColumns
    from ._parts import check_parts_folder, embed_parts

    to_parts = Path(args.output).is_dir() or not Path(args.output).suffix or args.output.endswith(("/", os.sep))
    if not to_parts and (args.workers or args.scheduler or args.rows_per_part):
        raise CLIError("--workers, --scheduler and --rows-per-part write Parquet parts into a folder: give -o a "
                       f"folder (a path without a suffix, or ending in /), not {args.output!r}")
    args.rows_per_part = args.rows_per_part or 10_000
    output = check_parts_folder(args.output) if to_parts else check_output(args.output, TABLE_FORMATS, "output")
    check_device(args.device)
    table = read_table(args.table)
    check_columns(table, [args.image_col, args.text_col], args.table)
    folder = _folder(args.table)
    warn_if_texts_are_paths(table[args.text_col], folder, args.text_col, say)
    image, text = make_encoders(args, folder, "nan" if args.on_error == "skip" else args.on_error)
    args.parts_folder = to_parts  # what an interruption can keep
    if to_parts:  # rows are checked inside each part (a million rows are not read twice)
        return embed_parts(args, table, (image, text), output, log, say)
    modalities = [(image, args.image_col), (text, args.text_col)]
    log(f"checking and embedding {len(table)} images ({args.image_col!r}) and texts ({args.text_col!r})")
    found = check_readability(modalities, table, policy=args.on_error)
    for column, (_, labels) in found.missing.items():  # a missing value cannot be embedded either
        for label in labels:
            found.reasons.setdefault(label, f"{column}: missing value")
    note = enforce(found, policy=args.on_error, verb="embedded", table=args.table, folder=folder, per_row=False)
    if args.on_error == "raise":
        for encoder, _ in modalities:
            encoder.set_params(on_error="zero")  # every problem was reported above; none is left
    embedded = EmbedColumns([(column, encoder) for encoder, column in modalities]).fit(table).transform(table)
    embedded.attrs.clear()  # its notes repeat what was said above
    out = pd.concat([pd.DataFrame({"row_id": np.arange(len(table))}, index=table.index), embedded], axis=1)
    if args.on_error == "skip":
        out = out[~out.index.isin(list(found.reasons))]
    if note:
        say(note)
    write_table(out, output)
    say(f"wrote {plural(out.shape[0], 'row')} x {out.shape[1] - 1} embedding columns to {output}")
