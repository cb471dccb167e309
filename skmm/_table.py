"""A table of modality columns (images, texts) as the estimators read it: one frame, the values present, the
rows with none, and the columns recorded in ``fit``.

Low layer: numpy, pandas, scikit-learn and skmm's other low modules only, so that the encoders, the fusion
and the estimators can all share it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import validate_data

from ._inputs import is_missing, row_name
from ._messages import first_and_more


def as_frame(X):
    """``X`` as a pandas DataFrame.

    Parameters
    ----------
    X : pandas.DataFrame, dict of columns or 2-D ndarray
        The table. A dict's columns must have one length.

    Returns
    -------
    frame : pandas.DataFrame
        ``X`` itself when it is a DataFrame.
    """
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, dict):
        lengths = {name: len(values) for name, values in X.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the columns of X have different lengths: {lengths}")
        return pd.DataFrame({name: list(values) for name, values in X.items()})
    if isinstance(X, np.ndarray) and X.ndim == 2:
        return pd.DataFrame(X)
    raise TypeError(f"X must be a pandas DataFrame or a dict of columns, got {type(X).__name__}")


def present_mask(values):
    """Which values are present: not None, NaN, ``pd.NA``, ``pd.NaT`` or a blank string (empty or whitespace
    only; see :func:`skmm._inputs.is_missing`).

    Parameters
    ----------
    values : pandas.Series, sequence or pandas.DataFrame
        One column of values. A DataFrame (a modality read from several
        columns, such as a table's numbers and categories) is present in a
        row where any of its cells is: its transformer imputes the others,
        and a row with none is missing the modality.

    Returns
    -------
    mask : ndarray of bool, shape (n_rows,)
    """
    if isinstance(values, pd.DataFrame):
        cells = [present_mask(values.iloc[:, j]) for j in range(values.shape[1])]
        return np.logical_or.reduce(cells) if cells else np.zeros(len(values), dtype=bool)
    return np.fromiter((not is_missing(value) for value in values), dtype=bool, count=len(values))


def reject_rows_without_a_modality(masks, index, columns, after=None):
    """Raise a ValueError naming the rows where every modality is missing.

    Parameters
    ----------
    masks : list of ndarray of bool
        Per modality, the rows where it is present.
    index : pandas.Index
        The table's index, to name the rows as the user knows them.
    columns : list
        The modality columns, named in the message.
    after : str, optional
        What else makes a value absent (``"could be read"``: after encoding,
        a value that failed counts as missing too).
    """
    empty = ~np.logical_or.reduce(masks)
    if not empty.any():
        return
    rows = first_and_more(np.flatnonzero(empty), lambda p: row_name(index, p), separator=", ")
    state = "missing" if after is None else f"missing, or none {after}"
    raise ValueError(f"{int(empty.sum())} row(s) have no modality at all ({rows}): every one of columns "
                     f"{columns} is {state} there, so there is nothing to predict them from. Drop those rows or "
                     f"fill one of their values.")


def remember_columns(estimator, columns):
    """Set ``n_features_in_`` and ``feature_names_in_`` of ``estimator`` from the columns it is fitted on.

    scikit-learn's own way, :func:`~sklearn.utils.validation.validate_data`
    with ``skip_check_array=True``, given the table's header alone: the
    cells are images and texts, which ``check_array`` cannot take, and an
    encoder's input (a list, a Series) is one column that validate_data
    would not count. ``feature_names_in_`` is set when every column name is
    a string, and deleted when none is (a refit on unnamed columns forgets
    the old names); a mix of string and other names is a TypeError, as
    everywhere in scikit-learn.

    Parameters
    ----------
    estimator : estimator instance
        The estimator being fitted.
    columns : pandas.Index or list
        The names of the columns of its input (``None`` for an unnamed one).
    """
    validate_data(estimator, pd.DataFrame(columns=pd.Index(columns)), skip_check_array=True)
