"""Which rows of a table the command line can use, and what ``--on-error`` does with the others."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .._messages import first_and_more
from ._io import CLIError


def plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class Readability:
    """What a pass over the table found.

    ``reasons``: row label -> why, for every row with a value that cannot be
    read or with no value at all; ``usable``: per column, the rows whose value
    is there and readable; ``hopeless``: rows with no usable value;
    ``dead_columns``: columns none of whose values could be read.
    """

    index_name: str
    reasons: dict = field(default_factory=dict)
    usable: dict = field(default_factory=dict)
    hopeless: list = field(default_factory=list)
    dead_columns: dict = field(default_factory=dict)

    def describe(self, labels=None, limit=5):
        labels = list(self.reasons) if labels is None else list(labels)
        return first_and_more(labels, lambda label: f"{self.index_name} {label} ({self.reasons[label]})", limit=limit)


def _present(values):
    from .._table import present_mask  # on use: it imports scikit-learn, which `skmm --help` need not wait for

    return present_mask(values)


def check_readability(encoders_and_columns, X, *, policy, fitted=False):
    """Check every value of every modality column; under ``policy="raise"`` stop at the first problem.

    First the cheap checks of every column (a file that does not exist, a
    wrong type), before any model runs; then each column is encoded once, so
    that what cannot be decoded shows too. The embeddings stay in the cache:
    the fits and predictions that follow do not encode anything again.
    ``fitted``: the encoders come from a saved model and are used as they are.
    """
    from sklearn.base import clone

    found = Readability(X.index.name or "row")
    anything = np.zeros(len(X), dtype=bool)
    for encoder, column in encoders_and_columns:  # cheap checks first, over every column
        present = _present(X[column])
        anything |= present
        problems = encoder.check_items(list(X[column][present]))
        labels = X.index[present]
        for position, message in sorted(problems.items()):
            found.reasons.setdefault(labels[position], f"{column}: {message}")
    for label in X.index[~anything]:
        found.reasons[label] = "no value in any modality column"
    if found.reasons and policy == "raise":
        found.hopeless = list(X.index[~anything])
        return found
    for encoder, column in encoders_and_columns:
        values = X[column]
        ok = _present(values)
        if ok.any():
            probe = encoder if fitted else _loaded(clone(encoder), values[ok], column)
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
    nothing = ~np.logical_or.reduce(list(found.usable.values()))
    found.hopeless = list(X.index[nothing])
    for label in found.hopeless:
        found.reasons.setdefault(label, "no value in any modality column")
    return found


def _loaded(encoder, values, column):
    """``encoder`` fitted (its model loaded), or one clear error that names the model."""
    try:
        return encoder.fit(values)
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
        raise CLIError(f"{plural(len(found.hopeless), 'row')} of {table} have no modality that can be read: "
                       f"{found.describe(found.hopeless)}. Use --on-error skip to leave them out.")
    kept = "keep only their other modality" if per_row else f"have {policy}s where a value cannot be read"
    return f"{plural(len(found.reasons), 'row')} {kept} (--on-error {policy}): {found.describe()}"


def warn_if_texts_are_paths(values, folder, column, say):
    """Texts that are all names of existing files were most likely meant to be read: say so."""
    texts = [v for v in values if isinstance(v, str)][:200]
    if texts and sum(os.path.isfile(os.path.join(folder, t)) for t in texts) >= 0.9 * len(texts):
        say(f"warning: the values of text column {column!r} are names of files; skmm embeds the text itself, not "
            "what a file holds. Read the files into the column first (skmm.datasets.decode_text_bytes decodes "
            "text files of unknown encoding).")


def check_target(y, target, cv):
    """At least two classes, and as many rows of each as there are folds: checked before any model work."""
    classes, counts = np.unique(y.astype(str), return_counts=True)
    classes = classes.tolist()
    if len(classes) < 2:
        raise CLIError(f"column {target!r} has a single class ({classes[0]!r}) in its {plural(len(y), 'labelled row')}"
                       ": a classifier needs at least 2")
    if cv >= 2 and counts.min() < cv:
        rare = classes[int(np.argmin(counts))]
        advice = f"use --cv {counts.min()} or fewer" if counts.min() >= 2 else "use --cv 0 to skip cross-validation"
        raise CLIError(f"--cv {cv}: class {rare!r} of column {target!r} has only "
                       f"{plural(int(counts.min()), 'labelled row')}, fewer than the folds; {advice}")
