"""The ``skmm`` command line: demo, fit, predict, embed.

Exit codes: 0 success, 1 a problem with the data or a file (the message names it: the column, the
file, the row), 2 a usage error (argparse's own).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_ESTIMATORS = ("logreg", "mlp")
_FUSIONS = ("concat", "average", "weighted", "gated")


class CLIError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 1."""


def _add_runtime_options(parser):
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--batch-size", type=int, default=64, help="items per forward pass (default: 64)")
    parser.add_argument("--cache", default="auto",
                        help="embedding cache directory, shared across runs (default: $SKMM_CACHE_DIR or memory)")
    parser.add_argument("--no-tune-malloc", action="store_true",
                        help="leave glibc malloc as it is (by default the CLI tunes it: about 2x faster on CPU)")


def _add_column_options(parser, target=False):
    parser.add_argument("--image-col", required=True, help="column of image paths (relative to the table's folder)")
    parser.add_argument("--text-col", required=True, help="column of texts")
    if target:
        parser.add_argument("--target", required=True, help="column of labels")


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skmm",
        description="Multimodal (image + text) classification with scikit-learn pipelines. "
                    "A TABLE is a CSV or Parquet file with one row per item: an image path, a text and, "
                    "to fit, a label.",
        epilog="Example: skmm fit posts.csv --image-col photo --text-col caption --target label -o model.skops",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="compare text-only, image-only, early- and late-fusion pipelines on generated data",
        description="Generate a small image+text dataset, embed it with the offline default models "
                    "(EfficientNet-Lite0, all-MiniLM-L6-v2), print cross-validated scores of each pipeline, "
                    "and save a bar chart of the scores and the confusion matrix of the best one.")
    demo.add_argument("--n-samples", type=int, default=300, help="rows to generate (default: 300)")
    demo.add_argument("--cv", type=int, default=5, help="cross-validation folds (default: 5)")
    demo.add_argument("--output-dir", default="skmm_demo_output", help="where the PNG plots go")
    _add_runtime_options(demo)

    fit = commands.add_parser("fit", help="cross-validate and fit a pipeline on a table, save it",
                              description="Fit image + text encoders, a fusion and a classifier on TABLE, "
                                          "print cross-validated accuracy and macro-F1, and save the fitted "
                                          "pipeline (skops format).")
    fit.add_argument("table", metavar="TABLE", help="CSV or Parquet file")
    _add_column_options(fit, target=True)
    fit.add_argument("--fusion", choices=_FUSIONS, default="concat", help="early fusion method (default: concat)")
    fit.add_argument("--estimator", choices=_ESTIMATORS, default="logreg",
                     help="final classifier: logistic regression or the torch MLP (default: logreg)")
    fit.add_argument("--cv", type=int, default=5, help="folds for the printed scores; 0 or 1 skips them")
    fit.add_argument("-o", "--output", required=True, help="model file to write, e.g. model.skops")
    _add_runtime_options(fit)

    predict = commands.add_parser("predict", help="predict the rows of a table with a saved model",
                                  description="Predict every row of TABLE with MODEL; the output keeps the "
                                              "input's rows, order and columns, and adds the prediction and "
                                              "one probability column per class.")
    predict.add_argument("model", metavar="MODEL", help="a file written by 'skmm fit'")
    predict.add_argument("table", metavar="TABLE", help="CSV or Parquet file with the model's columns")
    predict.add_argument("-o", "--output", required=True, help="CSV or Parquet file to write")
    _add_runtime_options(predict)

    embed = commands.add_parser("embed", help="write the image and text embeddings of a table",
                                description="Embed the images and texts of TABLE with the default models and "
                                            "write one row per input row (same index).")
    embed.add_argument("table", metavar="TABLE", help="CSV or Parquet file")
    _add_column_options(embed)
    embed.add_argument("-o", "--output", required=True, help="Parquet (or CSV) file to write")
    _add_runtime_options(embed)
    return parser


def read_table(path):
    """Read a CSV or Parquet table."""
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"table {str(path)!r} does not exist")
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:  # a parse error: say which file
        raise CLIError(f"cannot read table {str(path)!r}: {exc}") from exc
    raise CLIError(f"table {str(path)!r}: unsupported format {suffix!r} (use .csv or .parquet)")


def write_table(frame, path):
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path)
    elif path.suffix.lower() == ".csv":
        frame.to_csv(path)
    else:
        raise CLIError(f"output {str(path)!r}: unsupported format (use .csv or .parquet)")


def _check_columns(table, columns, table_path):
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CLIError(f"column(s) {missing} not in {table_path} (its columns: {list(table.columns)})")


def _resolve_image_paths(table, column, table_path):
    """Relative image paths are relative to the table's folder."""
    from ._inputs import is_missing

    folder = Path(table_path).resolve().parent

    def resolve(value):
        if is_missing(value) or not isinstance(value, str) or os.path.isabs(value):
            return value
        return str(folder / value)

    table = table.copy()
    table[column] = table[column].map(resolve)
    return table


def _encoders(args):
    from . import ImageEncoder, TextEncoder

    common = dict(device=args.device, batch_size=args.batch_size, cache=args.cache, progress=True)
    return ImageEncoder(**common), TextEncoder(**common)


def _fit(args):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import Pipeline

    from . import TorchMLPClassifier, make_fusion, persistence

    table = read_table(args.table)
    _check_columns(table, [args.image_col, args.text_col, args.target], args.table)
    labelled = table[table[args.target].notna()]
    if len(labelled) < len(table):
        print(f"{len(table) - len(labelled)} rows without a label in {args.target!r} are left out")
    X = _resolve_image_paths(labelled[[args.image_col, args.text_col]], args.image_col, args.table)
    y = labelled[args.target].to_numpy()
    image, text = _encoders(args)
    classifier = (LogisticRegression(C=3.0, max_iter=3000) if args.estimator == "logreg"
                  else TorchMLPClassifier(early_stopping=True, device=args.device, random_state=0))
    pipeline = Pipeline([("fuse", make_fusion((image, args.image_col), (text, args.text_col), method=args.fusion)),
                         ("clf", classifier)])
    if args.cv >= 2:
        folds = StratifiedKFold(args.cv, shuffle=True, random_state=0)
        scores = cross_validate(pipeline, X, y, cv=folds, scoring=("accuracy", "f1_macro"))
        print(f"{args.cv}-fold CV on {len(X)} rows: accuracy {scores['test_accuracy'].mean():.3f} "
              f"+- {scores['test_accuracy'].std():.3f}, macro-F1 {scores['test_f1_macro'].mean():.3f} "
              f"+- {scores['test_f1_macro'].std():.3f}")
    pipeline.fit(X, y)
    persistence.dump(pipeline, args.output)
    print(f"wrote {args.output}")


def _predict(args):
    from . import ImageEncoder, persistence
    from .fusion import ModalityFusion

    if not Path(args.model).is_file():
        raise CLIError(f"model {args.model!r} does not exist")
    try:
        model = persistence.load(args.model)
    except persistence.UntrustedTypesError as exc:
        raise CLIError(str(exc)) from exc
    fusion = model.steps[0][1] if hasattr(model, "steps") else None
    if not isinstance(fusion, ModalityFusion):
        raise CLIError(f"{args.model} is not a model written by 'skmm fit'")
    image_col = next(column for _, encoder, column in fusion.transformers_ if isinstance(encoder, ImageEncoder))
    columns = [column for _, _, column in fusion.transformers_]
    table = read_table(args.table)
    _check_columns(table, columns, args.table)
    _apply_runtime(fusion, args)
    X = _resolve_image_paths(table[columns], image_col, args.table)
    probabilities = model.predict_proba(X)
    classes = model.classes_
    out = table.copy()
    out["prediction"] = classes[probabilities.argmax(axis=1)]
    for i, label in enumerate(classes):
        out[f"proba_{label}"] = probabilities[:, i]
    write_table(out, args.output)
    print(f"wrote {len(out)} predictions to {args.output}")


def _apply_runtime(fusion, args):
    """Device, batch size and cache of a loaded model's encoders follow the command line."""
    from ._device import resolve_device

    for _, encoder, _ in fusion.transformers_:
        if hasattr(encoder, "fingerprint_"):  # an skmm encoder
            encoder.set_params(batch_size=args.batch_size, cache=args.cache, progress=True)
            if args.device != "auto":
                encoder.device_ = str(resolve_device(args.device))
                encoder._bundle = None


def _embed(args):
    import numpy as np
    import pandas as pd

    table = read_table(args.table)
    _check_columns(table, [args.image_col, args.text_col], args.table)
    table = _resolve_image_paths(table, args.image_col, args.table)
    image, text = _encoders(args)
    blocks = []
    for encoder, column in ((image, args.image_col), (text, args.text_col)):
        embeddings = encoder.fit(table[column]).transform(table[column])
        names = [f"{column}__{i}" for i in range(embeddings.shape[1])]
        blocks.append(pd.DataFrame(embeddings, index=table.index, columns=names))
    out = pd.concat(blocks, axis=1)
    write_table(out.astype(np.float32), args.output)
    print(f"wrote {out.shape[0]} rows x {out.shape[1]} embedding columns to {args.output}")


def _demo(args):
    from .demo import run_demo

    run_demo(n_samples=args.n_samples, cv=args.cv, device=args.device, batch_size=args.batch_size,
             cache=args.cache, output_dir=args.output_dir)


def main(argv=None):
    """Entry point of the ``skmm`` console script; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if not args.no_tune_malloc:
        from .performance import tune_malloc

        tune_malloc()  # the command line owns its process (see skmm.performance)
    from .encoders import EncodingError

    try:
        {"demo": _demo, "fit": _fit, "predict": _predict, "embed": _embed}[args.command](args)
    except (CLIError, EncodingError) as exc:
        print(f"skmm {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
