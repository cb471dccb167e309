"""Which rows of a table the command line can use, and what ``--on-error`` does with the others."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .._messages import first_and_more
from ._io import CLIError


def plural(count, word):
    """``"1 row"``, ``"2 rows"``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def agree(count, singular, plural_form):
    """The word that agrees with ``count`` things: ``agree(1, "has", "have")`` is ``"has"``."""
    return singular if count == 1 else plural_form


@dataclass
class Readability:
    """What a pass over the table found.

    ``reasons``: row label -> why, for every row with a value that cannot be
    read or with no value at all; ``usable``: per column, the rows whose value
    is there and readable; ``hopeless``: rows with no usable value;
    ``dead_columns``: columns none of whose values could be read;
    ``missing``: per column, ``(modality, labels)`` of the rows with no value
    there (None, NaN, an empty or blank field).
    """

    index_name: str
    reasons: dict = field(default_factory=dict)
    usable: dict = field(default_factory=dict)
    hopeless: list = field(default_factory=list)
    dead_columns: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)

    def describe(self, labels=None, limit=5):
        labels = list(self.reasons) if labels is None else list(labels)
        return first_and_more(labels, lambda label: f"{self.index_name} {label} ({self.reasons[label]})", limit=limit)


def present(values):
    """Which of ``values`` are there: the library's one rule (``skmm._table.present_mask``)."""
    from .._table import present_mask  # on use: it imports scikit-learn, which `skmm --help` need not wait for

    return present_mask(values)


def check_readability(encoders_and_columns, X, *, policy, fitted=False, other_present=None):
    """Check every value of every modality column; under ``policy="raise"`` stop at the first problem.

    First the cheap checks of every column (a file that does not exist, a
    wrong type), before any model runs; then each column is encoded once, so
    that what cannot be decoded shows too. The embeddings stay in the cache:
    the fits and predictions that follow do not encode anything again.
    ``fitted``: the encoders come from a saved model and are used as they are.
    ``other_present``: the rows with a value in another modality (the table
    columns), which keep a row usable without an image or a text.
    """
    from sklearn.base import clone

    found = Readability(X.index.name or "row")
    others = np.zeros(len(X), dtype=bool) if other_present is None else np.asarray(other_present, dtype=bool)
    anything = others.copy()
    masks = [present(X[column]) for _, column in encoders_and_columns]  # once: each pass below reads them
    for (encoder, column), there in zip(encoders_and_columns, masks):  # cheap checks first, over every column
        anything |= there
        found.missing[column] = (getattr(encoder, "modality", "value"), list(X.index[~there]))
        problems = encoder.check_items(list(X[column][there]))
        labels = X.index[there]
        for position, message in sorted(problems.items()):
            found.reasons.setdefault(labels[position], f"{column}: {message}")
    for label in X.index[~anything]:
        found.reasons[label] = "no value in any modality column"
    if found.reasons and policy == "raise":
        found.hopeless = list(X.index[~anything])
        return found
    # Every model loaded before any column is encoded: a wrong model name fails before minutes of work.
    probes = [encoder if fitted or not there.any() else _loaded(clone(encoder), X[column][there], column)
              for (encoder, column), there in zip(encoders_and_columns, masks)]
    for probe, (_, column), there in zip(probes, encoders_and_columns, masks):
        values = X[column]
        ok = there.copy()  # narrowed below to the items that could be read
        if ok.any():
            previous = probe.on_error
            probe.set_params(on_error="nan")  # every item checked, none raising
            try:
                _, problems, index, _ = probe.encode_rows(values[ok])
            finally:
                probe.set_params(on_error=previous)
            for position, message in sorted(problems.items()):
                found.reasons.setdefault(index[position], f"{column}: {message}")
            failed = np.flatnonzero(ok)[sorted(problems)]
            if len(failed) == ok.sum():
                found.dead_columns[column] = index[sorted(problems)[0]]
            ok[failed] = False
        found.usable[column] = ok
    nothing = ~np.logical_or.reduce([*found.usable.values(), others])
    found.hopeless = list(X.index[nothing])
    for label in found.hopeless:
        found.reasons.setdefault(label, "no value in any modality column")
    return found


def non_numbers(X, numeric_columns):
    """The cells of ``numeric_columns`` that hold something other than a finite number (a missing value is not:
    it is imputed). Returns ``(reasons, numbers)``: row label -> what is wrong there, and the columns as numbers
    (those cells missing)."""
    from ..encoders.tabular import non_number_cells

    reasons, numbers = {}, {}
    for column in numeric_columns:
        values = X[column]
        bad, numbers[column] = non_number_cells(values.where(present(values)))  # a blank field is missing too
        for label in X.index[bad]:
            why = f"{column}: {values[label]!r} is not a number"
            reasons[label] = f"{reasons[label]}, {why}" if label in reasons else why
    return {label: reasons[label] for label in X.index if label in reasons}, numbers  # in the table's order


def _loaded(encoder, values, column):
    """``encoder`` fitted (its model loaded), or one clear error that names the model."""
    from ..encoders import ModelNotFoundError, WeightsUnavailableError

    try:
        return encoder.fit(values)
    except (ModelNotFoundError, WeightsUnavailableError) as exc:  # their message names the fix
        raise CLIError(f"could not load the {encoder.modality} model {encoder.model!r} for column {column!r}: "
                       f"{exc}") from None
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise CLIError(f"could not load the {encoder.modality} model {encoder.model!r} for column {column!r} "
                       f"({type(exc).__name__}: {exc}); a model not shipped with skmm is downloaded on first use: "
                       "is this machine online?") from None


def enforce(found, *, policy, verb, table, folder, per_row=True):
    """Raise the one-line error ``--on-error`` calls for; else return the note to print (or None).

    ``verb``: what cannot be done with such a row ("used", "predicted",
    "embedded"). ``per_row``: the command needs one usable modality per row
    (fit, predict); embed writes each column on its own.
    """
    if not found.reasons:
        return None
    for column, label in found.dead_columns.items():
        raise CLIError(f"no value of column {column!r} in {table} could be read ({found.describe([label], 1)}); "
                       f"relative paths are relative to the table's folder, {str(folder)!r}")
    if policy == "raise":
        raise CLIError(f"{plural(len(found.reasons), 'row')} of {table} cannot be {verb}: {found.describe()}. "
                       "Use --on-error skip to leave them out, or --on-error zero to keep them"
                       + (" (from their other modality)." if per_row else " (zeros for what cannot be read)."))
    if policy == "skip":
        return f"{plural(len(found.reasons), 'row')} left out (--on-error skip): {found.describe()}"
    if per_row and found.hopeless:
        raise CLIError(f"{plural(len(found.hopeless), 'row')} of {table} {agree(len(found.hopeless), 'has', 'have')} "
                       "no modality that can be read: "
                       f"{found.describe(found.hopeless)}. Use --on-error skip to leave them out.")
    n = len(found.reasons)
    kept = (f"{agree(n, 'keeps only its', 'keep only their')} other modality" if per_row
            else f"{agree(n, 'has', 'have')} {policy}s where a value cannot be read")
    return f"{plural(n, 'row')} {kept} (--on-error {policy}): {found.describe()}"


def describe_missing(found, verb, n_modalities=2):
    """One note per column with missing values in rows that are kept: they are used from their other modality.

    ``verb``: what is done with such a row ("used", "predicted"); ``n_modalities``: how many the model has.
    Rows already in ``found.reasons`` (left out, or an error) are said there, not here.
    """
    notes = []
    for column, (modality, labels) in found.missing.items():
        labels = [label for label in labels if label not in found.reasons]
        if labels:
            n = len(labels)
            lines = first_and_more(labels, lambda label: f"{found.index_name} {label}", separator=", ")
            notes.append(f"{plural(n, 'row')} {agree(n, 'has', 'have')} no {modality} in {column!r} (a missing "
                         f"value: an empty or blank field), {verb} from {agree(n, 'its', 'their')} other "
                         f"{agree(n_modalities - 1, 'modality', 'modalities')}: {lines}")
    return notes


def warn_if_texts_are_paths(values, folder, column, say):
    """Texts that are all names of existing files were most likely meant to be read: say so."""
    texts = [v for v in values if isinstance(v, str)][:200]
    if texts and sum(os.path.isfile(os.path.join(folder, t)) for t in texts) >= 0.9 * len(texts):
        say(f"warning: the values of text column {column!r} are names of files; skmm embeds the text itself, not "
            "what a file holds. Read the files into the column first (skmm.datasets.decode_text_bytes decodes "
            "text files of unknown encoding).")


def check_target(y, target):
    """At least two classes: checked before any model work."""
    classes = np.unique(y.astype(str)).tolist()
    if len(classes) < 2:
        raise CLIError(f"column {target!r} has a single class ({classes[0]!r}) in its {plural(len(y), 'labelled row')}"
                       ": a classifier needs at least 2")


def folds_for(y, target, cv):
    """The folds cross-validation can use, as scikit-learn would go on rather than stop: ``(folds, note)``.

    ``cv`` when every class has that many rows; else the most folds the
    rarest class allows (each fold must hold each class once), at least 2;
    else 0, no cross-validation. ``note`` says why in one line, None when
    ``cv`` is used as asked (0 included).
    """
    if cv == 0:
        return 0, None
    classes, counts = np.unique(y.astype(str), return_counts=True)
    fewest = int(counts.min())
    if fewest >= cv:
        return cv, None
    why = (f"--cv {cv}: class {str(classes[int(np.argmin(counts))])!r} of column {target!r} has only "
           f"{plural(fewest, 'labelled row')}")
    if fewest >= 2:
        return fewest, f"{why}, so cross-validation uses {fewest} folds (the most it allows)"
    return 0, (f"{why}, so cross-validation is skipped (it needs 2 rows of every class); the model is still "
               "fitted on every row")
