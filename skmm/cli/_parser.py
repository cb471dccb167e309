"""The command line's arguments: every value checked by argparse (exit code 2) before any work."""

from __future__ import annotations

import argparse
import re

from .._defaults import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, FUSION_METHODS, ON_ERROR
from ._models import ESTIMATORS

ON_ERROR_CHOICES = (*ON_ERROR, "skip")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _device(text):
    if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda, cuda:1 or mps")
    return text


def _folds(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value == 1 or value < 0:
        raise argparse.ArgumentTypeError(f"{value}: use 0 to skip cross-validation, or 2 folds or more")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Every default shown in --help (but None and flags' False); descriptions kept as written."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in help_text and (
                action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)):
            help_text += " (default: %(default)s)"
        return help_text


def _add_runtime_options(parser):
    parser.add_argument("--device", type=_device, default="auto",
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="items per forward pass")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                        help="the encoders' precision; auto: fp32 on every CPU (the same embeddings on any machine), "
                             "bf16/fp16 on a GPU; bf16: faster on a CPU with bf16 instructions, embeddings move "
                             "slightly (default: auto; predict: the model's own)")
    parser.add_argument("--cache", default="auto",
                        help="embedding cache folder, shared across runs; auto: $SKMM_CACHE_DIR, else in memory")
    parser.add_argument("--no-tune-malloc", action="store_true",
                        help="leave glibc malloc as it is (by default the command line tunes it: faster on a CPU)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per stage and per fold")


def _add_on_error(parser, what):
    parser.add_argument("--on-error", choices=ON_ERROR_CHOICES, default="raise",
                        help=f"a row whose image or text cannot be read: raise: stop with an error naming its "
                             f"line; {what}")


def _add_column_options(parser, target=False, models=True):
    parser.add_argument("--image-col", required=True, help="column of image paths (relative to the table's folder)")
    parser.add_argument("--text-col", required=True, help="column of texts")
    if target:
        parser.add_argument("--target", required=True, help="column of labels")
    if models:
        parser.add_argument("--image-model", default=DEFAULT_IMAGE_MODEL,
                            help="torchvision or timm model name (timm:NAME, torchvision:NAME), or skmm's offline one")
        parser.add_argument("--text-model", default=DEFAULT_TEXT_MODEL,
                            help="sentence-transformers name or local folder, or skmm's offline one")


def _add_demo_command(commands):
    """``skmm demo``: the pipelines compared on generated data."""
    demo = commands.add_parser(
        "demo", formatter_class=_Formatter,
        help="compare text-only, image-only, early- and late-fusion pipelines on generated data",
        description="Generate a small image+text dataset, embed it with the offline default models "
                    "(EfficientNet-Lite0, all-MiniLM-L6-v2), print cross-validated scores of each pipeline, "
                    "and save a bar chart of the scores and the confusion matrix of the best one.")
    demo.add_argument("--n-samples", type=_positive_int, default=300, help="rows to generate")
    demo.add_argument("--cv", type=_folds, default=5, help="cross-validation folds")
    demo.add_argument("--output-dir", default="skmm_demo_output", help="where the PNG plots go")
    _add_runtime_options(demo)


def _add_fit_command(commands):
    """``skmm fit TABLE -o MODEL``."""
    fit = commands.add_parser(
        "fit", formatter_class=_Formatter, help="cross-validate and fit a pipeline on a table, save it",
        description="Fit image + text encoders (and, with --table-cols, the table's numbers and categories), a "
                    "fusion and a classifier on TABLE; cross-validate it beside a baseline per modality (and image "
                    "+ text without the table columns) on the same folds, write a report folder (per-class "
                    "precision / recall / F1, confusion matrix, timings) and save the fitted pipeline.")
    fit.add_argument("table", metavar="TABLE", help="CSV or Parquet file")
    _add_column_options(fit, target=True)
    fit.add_argument("--table-cols", default=None, metavar="COL[,COL...]",
                     help="numbers and categories beside the image and text (price,brand): one more modality, "
                          "TabularEncoder() at its defaults (numeric columns median-imputed and standardised, "
                          "others one-hot); predict reads them from the model")
    fit.add_argument("--fusion", choices=FUSION_METHODS, default="concat",
                     help="early fusion method (--estimator stack uses all)")
    fit.add_argument("--estimator", choices=list(ESTIMATORS), default="logreg",
                     help=f"final classifier (every setting not shown at its default): logreg: {ESTIMATORS['logreg']}; "
                          f"mlp: {ESTIMATORS['mlp']} on --device; stack: {ESTIMATORS['stack']}, of every fusion "
                          "method, each modality alone, the encoders' lower layers, an MLP and word / character "
                          "n-grams of the text, their out-of-fold probabilities into one final estimator "
                          "(--fusion unused; tens of fits; each image and text embedded once, and read once more "
                          "for its backbone's lower layers, during the first fold)")
    fit.add_argument("--cv", type=_folds, default=5,
                     help="cross-validation folds for the report; 0 skips it. A class with fewer rows than that "
                          "lowers them to its count (at least 2, else no cross-validation), and says so")
    fit.add_argument("-o", "--output", required=True,
                     help="model file to write: .skops (safe to load), or .joblib / .pkl (pickle: trusted files only)")
    fit.add_argument("--report", default=None,
                     help="report folder; none given: next to the model, named after it (model_report/ for model.skops)")
    _add_on_error(fit, "zero or nan (the same here): keep the row, from its other modality, as if that value were "
                       "missing; skip: leave the row out")
    _add_runtime_options(fit)


def _add_predict_command(commands):
    """``skmm predict MODEL TABLE -o OUTPUT``."""
    predict = commands.add_parser(
        "predict", formatter_class=_Formatter, help="predict the rows of a table with a saved model",
        description="Predict every row of TABLE with MODEL. The output has exactly the input's columns, in order, "
                    "then 'prediction' and one 'proba_<class>' column per class (and 'reason' with --on-error skip).")
    predict.add_argument("model", metavar="MODEL", help="a file written by 'skmm fit'")
    predict.add_argument("table", metavar="TABLE", help="CSV or Parquet file with the model's columns")
    predict.add_argument("-o", "--output", required=True, help="CSV or Parquet file to write")
    _add_on_error(predict, "zero or nan (the same here): predict the row from its other modality; skip: no "
                           "prediction for the row, the reason in a 'reason' column")
    _add_runtime_options(predict)


def _add_embed_command(commands):
    """``skmm embed TABLE -o OUTPUT``, with the options of a folder output (Parquet parts, Dask)."""
    embed = commands.add_parser(
        "embed", formatter_class=_Formatter, help="write the image and text embeddings of a table",
        description="Embed the images and texts of TABLE and write one row per input row: 'row_id' (the row's "
                    "position in TABLE, from 0), then the image and the text embeddings, named as "
                    "ModalityFusion names them (<column>__imageencoder0, ...).\n\n"
                    "For large tables, write to a folder: one Parquet part per --rows-per-part rows, each "
                    "written whole or not at all. A rerun into the same folder computes only the parts that "
                    "are missing (after a crash, a lost worker, Ctrl-C). The parts run here one at a time, or "
                    "on Dask: --workers N starts a local cluster, --scheduler joins a running one (its workers "
                    "must see the image files and the output folder at the same paths). Rows are checked inside each part: --on-error raise "
                    "stops at the first part with a row that cannot be read (the parts written are kept; rerun "
                    "with another policy to go on); the other policies end with the rows they left out or "
                    "filled. Read the result with pandas.read_parquet(FOLDER) or "
                    "dask.dataframe.read_parquet(FOLDER).")
    embed.add_argument("table", metavar="TABLE", help="CSV or Parquet file")
    _add_column_options(embed)
    embed.add_argument("-o", "--output", required=True,
                       help="Parquet or CSV file to write; or a folder (an existing folder, a path without a suffix "
                            "or ending in /) for resumable Parquet parts")
    _add_on_error(embed, "zero / nan: fill its embedding with zeros / NaN; skip: leave the row out")
    _add_runtime_options(embed)
    parts = embed.add_argument_group("large tables (a folder output)")
    parts.add_argument("--rows-per-part", type=_positive_int, default=None,
                       help="rows in each Parquet part (default: 10000)")
    where = parts.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="run the parts on a local Dask cluster of this many worker processes (one thread "
                            "each)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the parts on the Dask cluster whose scheduler is at ADDRESS "
                            "(e.g. tcp://10.0.0.5:8786)")


def build_parser(version):
    """The ``skmm`` argument parser: the global options, then one sub-command each for demo, fit, predict and embed."""
    parser = argparse.ArgumentParser(
        prog="skmm", formatter_class=_Formatter,
        description="Multimodal (image + text) classification with scikit-learn pipelines. A TABLE is a CSV or "
                    "Parquet file with one row per item: an image path, a text and, to fit, a label.",
        epilog="Example: skmm fit posts.csv --image-col photo --text-col caption --target label -o model.skops")
    parser.add_argument("--version", action="version", version=f"skmm {version}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_demo_command(commands)
    _add_fit_command(commands)
    _add_predict_command(commands)
    _add_embed_command(commands)
    return parser
