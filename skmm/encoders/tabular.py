"""TabularEncoder: the numbers and categories of a table as one modality beside its images and texts."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler, TargetEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._inputs import row_name
from .._messages import first_and_more
from .._table import remember_columns


def _as_categories(frame):
    """Category values as strings (a column mixing 1 and "a" is still one set of categories); missing stays NaN."""
    return frame.astype(object).where(frame.notna(), np.nan).map(
        lambda v: v if isinstance(v, float) and np.isnan(v) else str(v))


class TabularEncoder(TransformerMixin, BaseEstimator):
    """Numeric and categorical columns as one block of features: a table's other columns as a modality.

    Numbers are imputed (median) and standardised; categories are imputed
    (their own ``"missing"`` category) and one-hot encoded (the
    ``max_categories - 1`` most frequent ones, the rest grouped) or target
    encoded. Use it as a :class:`~skmm.ModalityFusion` branch over a list of
    columns, beside the image and text encoders; ModalityFusion keeps its
    block at its own scale (it L2-normalises only embeddings) and
    gives a row whose every tabular value is missing the missing-modality
    treatment (see the user guide).

    Parameters
    ----------
    numeric : list of str or "auto", default="auto"
        The columns read as numbers. ``"auto"``: every column with a numeric
        dtype (booleans excepted) that ``categorical`` does not name.
    categorical : list of str or "auto", default="auto"
        The columns read as categories. ``"auto"``: every other column
        (strings, booleans, pandas categoricals). Whole numbers that are
        codes (a zip code, a year as a category) go here by name.
    encoding : {"onehot", "target"}, default="onehot"
        How categories become numbers: one column per category, or
        scikit-learn's cross-fitted :class:`~sklearn.preprocessing.TargetEncoder`
        (one column per class; needs ``y``), for columns with many categories.
    max_categories : int, default=20
        With one-hot encoding, at most this many columns per categorical
        column; rarer categories (and categories first seen after ``fit``)
        share the last one.
    add_indicator : bool, default=True
        Add a column per numeric column that had missing values in ``fit``,
        1 where the value was missing (imputed). A column complete in ``fit``
        has no such flag: a value missing there later is imputed all the same.

    Attributes
    ----------
    numeric_, categorical_ : list of str
        The columns read as numbers and as categories.
    column_transformer_ : sklearn.compose.ColumnTransformer
        The fitted transformer.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skmm.encoders import TabularEncoder
    >>> table = pd.DataFrame({"price": [9.5, np.nan, 20.0, 12.0], "brand": ["a", "b", None, "a"]})
    >>> encoder = TabularEncoder().fit(table)
    >>> encoder.numeric_, encoder.categorical_
    (['price'], ['brand'])
    >>> encoder.get_feature_names_out().tolist()
    ['price', 'missingindicator_price', 'brand_a', 'brand_b', 'brand_missing']
    >>> encoder.transform(table).shape
    (4, 5)
    """

    _parameter_constraints = {
        "numeric": [list, StrOptions({"auto"})],
        "categorical": [list, StrOptions({"auto"})],
        "encoding": [StrOptions({"onehot", "target"})],
        "max_categories": [Interval(Integral, 2, None, closed="left")],
        "add_indicator": ["boolean"],
    }

    def __init__(self, numeric="auto", categorical="auto", *, encoding="onehot", max_categories=20,
                 add_indicator=True):
        self.numeric = numeric
        self.categorical = categorical
        self.encoding = encoding
        self.max_categories = max_categories
        self.add_indicator = add_indicator

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the columns' kinds, imputations, scales and categories.

        Parameters
        ----------
        X : pandas.DataFrame (or a Series: one column)
        y : array-like of shape (n_samples,), optional
            Needed by ``encoding="target"``.

        Returns
        -------
        self : object
        """
        self._fit(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit, then encode ``X`` (with ``encoding="target"``, the training rows' encodings are cross-fitted).

        Parameters
        ----------
        X : pandas.DataFrame (or a Series: one column)
        y : array-like of shape (n_samples,), optional

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
        """
        return self._fit(X, y, transform=True)

    def _fit(self, X, y, transform=False):
        frame = _as_frame(X)
        remember_columns(self, frame.columns)
        self.numeric_, self.categorical_ = self._column_kinds(frame)
        _check_numbers(frame, self.numeric_)
        if self.encoding == "target" and self.categorical_ and y is None:
            raise ValueError("encoding='target' learns the categories' encodings from y: fit needs y")
        self.column_transformer_ = ColumnTransformer(self._branches(), verbose_feature_names_out=False,
                                                     sparse_threshold=0)
        if transform:
            return self.column_transformer_.fit_transform(frame, y)
        self.column_transformer_.fit(frame, y)
        return None

    def _column_kinds(self, frame):
        named = set(self.categorical if self.categorical != "auto" else []) | set(
            self.numeric if self.numeric != "auto" else [])
        unknown = sorted(named - set(frame.columns))
        if unknown:
            raise ValueError(f"TabularEncoder: column(s) {unknown} are not in X (columns: {list(frame.columns)})")
        if self.numeric != "auto":
            numeric = list(self.numeric)
        else:
            given = set(self.categorical) if self.categorical != "auto" else set()
            numeric = [c for c in frame.columns if c not in given and pd.api.types.is_numeric_dtype(frame[c])
                       and not pd.api.types.is_bool_dtype(frame[c])]
        categorical = (list(self.categorical) if self.categorical != "auto"
                       else [c for c in frame.columns if c not in numeric])
        both = sorted(set(numeric) & set(categorical))
        if both:
            raise ValueError(f"TabularEncoder: column(s) {both} are named both numeric and categorical")
        if not numeric and not categorical:  # scikit-learn's wording, which its API checks expect
            raise ValueError(f"TabularEncoder: found array with 0 feature(s) (shape={frame.shape}) while a "
                             "minimum of 1 is required.")
        return numeric, categorical

    def _branches(self):
        branches = []
        if self.numeric_:
            branches.append(("numeric", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                                      StandardScaler()), self.numeric_))
            if self.add_indicator:  # 0/1 columns, not standardised: a flag reads the same in every table
                flags = MissingIndicator(features="missing-only", error_on_new=False)
                branches.append(("missing", flags, self.numeric_))
        if self.categorical_:
            encoder = (OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=self.max_categories,
                                     sparse_output=False) if self.encoding == "onehot"
                       else TargetEncoder(random_state=0))
            branches.append(("categorical", make_pipeline(
                FunctionTransformer(_as_categories, feature_names_out="one-to-one"),
                SimpleImputer(strategy="constant", fill_value="missing"), encoder), self.categorical_))
        return branches

    def transform(self, X):
        """Encode ``X``.

        Parameters
        ----------
        X : pandas.DataFrame (or a Series: one column)

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
        """
        check_is_fitted(self, "column_transformer_")
        frame = _as_frame(X)
        validate_data(self, frame, reset=False, skip_check_array=True)  # the columns of fit, as scikit-learn checks
        _check_numbers(frame, self.numeric_)
        return self.column_transformer_.transform(frame)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: the numeric columns, their missing indicators, ``<column>_<category>``.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self, "column_transformer_")
        return self.column_transformer_.get_feature_names_out()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags


def non_number_cells(values):
    """The cells of one numeric column that hold something other than a finite number, and the column as numbers.

    A missing value (None, NaN) is not flagged: it is imputed. The one rule of
    :class:`TabularEncoder` (an error) and of the command line (``--on-error``).

    Parameters
    ----------
    values : pandas.Series

    Returns
    -------
    flagged : ndarray of bool
        The cells that are present but not finite numbers.
    numbers : pandas.Series of float
        The column as numbers, missing where a cell is missing or flagged.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.encoders.tabular import non_number_cells
    >>> flagged, numbers = non_number_cells(pd.Series([1.5, "?", None, "2"]))
    >>> flagged.tolist(), numbers.tolist()[::3]
    ([False, True, False, False], [1.5, 2.0])
    """
    numbers = pd.to_numeric(values, errors="coerce")
    flagged = (numbers.isna() & values.notna()).to_numpy() | np.isinf(numbers.to_numpy(float))
    return flagged, numbers.where(~flagged)


def _check_numbers(frame, numeric):
    """A value of a numeric column that is not a number, or is infinite, is an error naming its column and rows
    (a missing value is not: it is imputed)."""
    for column in numeric:
        values = frame[column]
        bad = np.flatnonzero(non_number_cells(values)[0])
        if len(bad):
            rows = first_and_more(bad, lambda p: f"{row_name(frame.index, p)}: {values.iloc[p]!r}", separator=", ")
            raise ValueError(f"TabularEncoder: numeric column {column!r} has {len(bad)} value(s) that are not finite "
                             f"numbers ({rows}); make them numbers or missing (NaN / None), or name the column "
                             "in categorical=[...]")


def _as_frame(X):
    if sparse.issparse(X):
        raise TypeError("TabularEncoder: sparse data was passed, but dense data is required (a DataFrame of "
                        "numbers and categories, or a dense array)")
    if isinstance(X, pd.Series):
        return X.to_frame()
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X, dtype=object)
    if array.ndim != 2:  # a 1-D array is ambiguous (one column, or one row?), as for scikit-learn
        raise ValueError(f"TabularEncoder: expected a 2-D table (a DataFrame, or a Series for one column), got "
                         f"an array of shape {array.shape}. Reshape your data: array.reshape(-1, 1) for one column")
    return pd.DataFrame(array).infer_objects()  # numbered columns: no feature names, as scikit-learn
