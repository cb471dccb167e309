"""What ``skmm fit``, ``predict`` and ``embed`` do, once their arguments and paths are checked."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import (MODEL_FORMATS, TABLE_FORMATS, CLIError, check_columns, check_folder_for, check_output,
                  load_model, read_table, save_model, write_table)


def _encoder_options(args, folder, on_error):
    return dict(device=args.device, batch_size=args.batch_size, cache=args.cache, progress=not args.quiet,
                on_error="raise" if on_error == "skip" else on_error), dict(root=str(folder))


def make_encoders(args, folder, on_error="raise"):
    """The image and text encoders the command line asks for; relative image paths are the table's folder's."""
    from .. import ImageEncoder, TextEncoder

    common, image_only = _encoder_options(args, folder, on_error)
    return (ImageEncoder(args.image_model, **common, **image_only), TextEncoder(args.text_model, **common))


@dataclass
class Readability:
    """What a pass over the table found: why each unusable row is so, and per column the rows it can be read at."""

    reasons: dict
    usable: dict
    hopeless: list  # rows with no usable modality at all

    def describe(self, index_name, limit=5):
        shown = "; ".join(f"{index_name} {label} ({why})" for label, why in list(self.reasons.items())[:limit])
        return shown + (f"; and {len(self.reasons) - limit} more" if len(self.reasons) > limit else "")


def check_readability(encoders_and_columns, X, fitted=False):
    """Encode each column once to find the rows whose values cannot be read, or that have no value at all.

    The embeddings stay in the cache, so the fits and predictions that follow
    do not encode anything again. ``fitted``: the encoders come from a saved
    model (used as they are), else they are fitted here first.
    """
    from sklearn.base import clone

    from .._inputs import is_missing

    reasons, usable = {}, {}
    for encoder, column in encoders_and_columns:
        values = X[column]
        ok = ~values.map(is_missing).to_numpy(dtype=bool)
        if ok.any():
            probe = encoder if fitted else clone(encoder).fit(values[ok])
            policy = probe.on_error
            probe.set_params(on_error="nan")  # every item checked, none raising
            try:
                _, problems, index, _ = probe.encode_rows(values[ok])
            finally:
                probe.set_params(on_error=policy)
            for position, message in sorted(problems.items()):
                reasons.setdefault(index[position], f"{column}: {message}")
            ok[np.flatnonzero(ok)[sorted(problems)]] = False
        usable[column] = ok
    nothing = ~np.logical_or.reduce(list(usable.values()))
    for label in X.index[nothing]:
        reasons.setdefault(label, "no value in any modality column")
    return Readability(reasons, usable, list(X.index[nothing]))


def _apply_policy(found, args, X, y, notes):
    """The rows to fit on under ``--on-error``, and per column the rows where it can be read."""
    if not found.reasons:
        return X, y, found.usable
    where = found.describe(X.index.name)
    if args.on_error == "raise":
        raise CLIError(f"{len(found.reasons)} row(s) of {args.table} cannot be used: {where}. Use --on-error skip "
                       "to leave them out, or zero / nan to keep them (from their other modality, where they have "
                       "one).")
    if args.on_error != "skip":
        if found.hopeless:
            raise CLIError(f"{len(found.hopeless)} row(s) of {args.table} have no modality that can be read: "
                           f"{where}. Use --on-error skip to leave them out.")
        notes.append(f"{len(found.reasons)} rows keep only their other modality (--on-error {args.on_error}): {where}")
        return X, y, found.usable
    notes.append(f"{len(found.reasons)} rows left out (--on-error skip): {where}")
    keep = ~X.index.isin(list(found.reasons))
    _check_target(y[keep], args.target, args.cv)
    return X[keep], y[keep], {column: ok[keep] for column, ok in found.usable.items()}


def _check_target(y, target, cv):
    classes, counts = np.unique(y.astype(str), return_counts=True)
    classes = classes.tolist()
    if len(classes) < 2:
        raise CLIError(f"column {target!r} has a single class ({classes[0]!r}) in its {len(y)} labelled rows: "
                       "a classifier needs at least 2")
    if cv >= 2 and counts.min() < cv:
        rare = classes[int(np.argmin(counts))]
        advice = f"use --cv {counts.min()} or fewer" if counts.min() >= 2 else "use --cv 0 to skip cross-validation"
        raise CLIError(f"--cv {cv}: class {rare!r} of column {target!r} has only {counts.min()} labelled row(s), "
                       f"fewer than the folds; {advice}")


def fit(args, log, say):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline

    from .. import ModalityFusion, TorchMLPClassifier
    from ._report import cross_validate, write_report

    output = check_output(args.output, MODEL_FORMATS, "output")
    report_folder = Path(args.report) if args.report else output.with_name(output.stem + "_report")
    if report_folder.exists() and not report_folder.is_dir():
        raise CLIError(f"report folder {str(report_folder)!r} is a file")
    check_folder_for(report_folder / "report.md" if report_folder.is_dir() else report_folder, "report folder")
    table = read_table(args.table)
    check_columns(table, [args.image_col, args.text_col, args.target], args.table)
    labelled = table[table[args.target].notna()]
    notes = []
    if len(labelled) < len(table):
        notes.append(f"{len(table) - len(labelled)} rows without a label in {args.target!r} are left out")
    y = labelled[args.target].to_numpy()
    _check_target(y, args.target, args.cv)  # before any model work
    X = labelled[[args.image_col, args.text_col]]
    folder = Path(args.table).resolve().parent
    image, text = make_encoders(args, folder, args.on_error)
    timings = {}

    start = time.perf_counter()
    log(f"embedding {len(X)} images ({args.image_col!r}) and texts ({args.text_col!r})")
    found = check_readability([(image, args.image_col), (text, args.text_col)], X)
    timings["embedding (each image and text once)"] = time.perf_counter() - start
    X, y, usable = _apply_policy(found, args, X, y, notes)
    for note in notes:
        say(note)

    estimator = (LogisticRegression(max_iter=3000) if args.estimator == "logreg"
                 else TorchMLPClassifier(device=args.device, random_state=0))
    pipeline = Pipeline([("fuse", ModalityFusion([("image", image, args.image_col), ("text", text, args.text_col)],
                                                 method=args.fusion)), ("clf", estimator)])
    fused, baselines = None, []
    if args.cv >= 2:
        start = time.perf_counter()
        folds = list(StratifiedKFold(args.cv, shuffle=True, random_state=0).split(X, y.astype(str)))
        fused = cross_validate(f"{args.fusion} fusion", pipeline, X, y, folds, log)
        for name, encoder, column in (("text only", text, args.text_col), ("image only", image, args.image_col)):
            has = usable[column]
            single = Pipeline([("fuse", ModalityFusion([(name.split()[0], encoder, column)])),
                               ("clf", clone(estimator))])
            position = np.cumsum(has) - 1  # each kept row's position among the rows that have this modality
            kept = [(position[train[has[train]]], position[test[has[test]]]) for train, test in folds]
            baselines.append(cross_validate(name, single, X[has], y[has], kept, log))
        timings[f"cross-validation ({args.cv} folds, fused and baselines)"] = time.perf_counter() - start
        say(f"{args.cv}-fold CV on {len(X)} rows (accuracy / macro-F1 / weighted F1):")
        for result in (fused, *baselines):
            say(f"  {result.name:<16} {result.summary('accuracy')}  {result.summary('f1_macro')}  "
                f"{result.summary('f1_weighted')}" + (f"  ({result.rows} rows)" if result.rows < len(X) else ""))
    start = time.perf_counter()
    log("fitting on every row")
    pipeline.fit(X, y)
    timings["final fit"] = time.perf_counter() - start
    save_model(pipeline, output)
    say(f"wrote {output}")
    paths = write_report(report_folder, fused=fused, baselines=baselines, y=y, classes=pipeline.classes_,
                         table_path=args.table, timings=timings, notes=notes)
    say(f"wrote the report to {report_folder}/ ({', '.join(p.name for p in paths)})")


def _fusion_of(model, path):
    from ..fusion import ModalityFusion

    fusion = model.steps[0][1] if hasattr(model, "steps") else None
    if not isinstance(fusion, ModalityFusion) or not hasattr(model, "predict_proba"):
        raise CLIError(f"{path} is not a model written by 'skmm fit' (a pipeline of a ModalityFusion and a "
                       "classifier)")
    return fusion


def apply_runtime(fusion, args, folder, on_error):
    """The loaded model's encoders run where, how and on what the command line says."""
    common, image_only = _encoder_options(args, folder, on_error)
    for _, encoder, _ in fusion.transformers_:
        if hasattr(encoder, "move_to"):  # an skmm encoder
            encoder.set_params(**{k: v for k, v in common.items() if k != "device"})
            if "root" in encoder.get_params():
                encoder.set_params(**image_only)
            if args.device != "auto":
                encoder.move_to(args.device)


def predict(args, log, say):
    output = check_output(args.output, TABLE_FORMATS, "output")
    model = load_model(args.model)
    fusion = _fusion_of(model, args.model)
    columns = [column for _, _, column in fusion.transformers_]
    table = read_table(args.table)
    check_columns(table, columns, args.table)
    apply_runtime(fusion, args, Path(args.table).resolve().parent, args.on_error)
    X = table[columns]
    reasons = {}
    if args.on_error in ("skip", "raise"):
        log(f"reading and embedding {len(X)} rows")
        found = check_readability([(encoder, column) for _, encoder, column in fusion.transformers_], X, fitted=True)
        reasons = found.reasons
        if reasons and args.on_error == "raise":
            raise CLIError(f"{len(reasons)} row(s) of {args.table} cannot be predicted: "
                           f"{found.describe(X.index.name)}. Use --on-error skip to write them without a "
                           "prediction, or zero / nan to predict them from their other modality.")
    good = ~X.index.isin(list(reasons))
    classes = model.classes_
    probabilities = np.full((len(X), len(classes)), np.nan)
    if good.any():
        log(f"predicting {int(good.sum())} rows")
        probabilities[good] = model.predict_proba(X[good])
    out = table.copy()
    predictions = np.empty(len(X), dtype=object)
    predictions[good] = classes[probabilities[good].argmax(axis=1)]
    out["prediction"] = predictions
    for i, label in enumerate(classes):
        out[f"proba_{label}"] = probabilities[:, i]
    if args.on_error == "skip":
        out["reason"] = [reasons.get(label, "") for label in X.index]
        if reasons:
            say(f"{len(reasons)} rows without a prediction (--on-error skip): {found.describe(X.index.name)}")
    write_table(out, output)
    say(f"wrote {int(good.sum())} predictions for {len(out)} rows to {output}")


def embed(args, log, say):
    import pandas as pd

    output = check_output(args.output, TABLE_FORMATS, "output")
    table = read_table(args.table)
    check_columns(table, [args.image_col, args.text_col], args.table)
    image, text = make_encoders(args, Path(args.table).resolve().parent,
                                "nan" if args.on_error == "skip" else args.on_error)
    blocks, failed = [pd.DataFrame({"row_id": np.arange(len(table))}, index=table.index)], np.zeros(len(table), bool)
    for encoder, column in ((image, args.image_col), (text, args.text_col)):
        log(f"embedding {len(table)} {encoder._modality}s ({column!r})")
        with warnings.catch_warnings():
            if args.on_error == "skip":
                warnings.simplefilter("ignore", UserWarning)  # the rows left out are reported below
            embeddings, bad = encoder.fit(table[column]).encode(table[column])
        failed |= bad
        names = [f"{column}__{name}" for name in encoder.get_feature_names_out()]
        blocks.append(pd.DataFrame(embeddings, index=table.index, columns=names))
    out = pd.concat(blocks, axis=1)
    if args.on_error == "skip" and failed.any():
        say(f"{int(failed.sum())} rows left out (--on-error skip): "
            + ", ".join(f"{table.index.name} {label}" for label in table.index[failed][:10]))
        out = out[~failed]
    write_table(out, output)
    say(f"wrote {out.shape[0]} rows x {out.shape[1] - 1} embedding columns to {output}")
