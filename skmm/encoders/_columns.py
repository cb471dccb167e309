"""Several columns of a table embedded side by side, each by its own encoder, with the rows that failed."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone

from ._base import EncodingWarning


class EmbedColumns(TransformerMixin, BaseEstimator):
    """Each ``(column, encoder)``'s raw embeddings side by side, named ``<column>__<feature>``.

    What ``skmm embed`` writes: the embeddings as the encoders make them
    (:class:`~skmm.ModalityFusion` would also rescale them). Fitting reads no
    item.

    Parameters
    ----------
    encoders : list of (str, encoder) tuples
        The column to embed and the skmm encoder that embeds it.

    Attributes
    ----------
    encoders_ : list of (str, encoder) tuples
        The fitted clones of ``encoders``.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skmm import ImageEncoder
    >>> from skmm.encoders import EmbedColumns
    >>> table = pd.DataFrame({"photo": [np.zeros((32, 32, 3), dtype=np.uint8)] * 2})
    >>> encoder = ImageEncoder(model="timm:test_efficientnet", weights=None, device="cpu", cache=None)
    >>> embedded = EmbedColumns([("photo", encoder)]).fit(table).transform(table)
    >>> embedded.shape, embedded.columns[0], embedded.attrs["skmm"]
    ((2, 256), 'photo__imageencoder0', {'problems': {}})
    """

    def __init__(self, encoders):
        self.encoders = encoders

    def fit(self, X, y=None):
        """Fit a clone of each encoder on its column (no item is read: the encoders are pretrained).

        Parameters
        ----------
        X : pandas.DataFrame
            The table, with every column named in ``encoders``.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self.encoders_ = [(column, clone(encoder).fit(X[column])) for column, encoder in self.encoders]
        return self

    def transform(self, X):
        """Embed each column with its encoder, side by side.

        Parameters
        ----------
        X : pandas.DataFrame
            The table, with every column named in ``encoders``.

        Returns
        -------
        embeddings : pandas.DataFrame
            One row per row of ``X`` (same index). Its
            ``attrs["skmm"]["problems"]`` maps the label of each row an
            encoder could not read (filled per its ``on_error``) to what went
            wrong: the Parquet parts keep it (see :func:`skmm.dask.part_notes`).

        Raises
        ------
        EncodingError
            When a row fails under an encoder's ``on_error="raise"``.
        """
        blocks, problems = [], {}
        for column, encoder in self.encoders_:
            embeddings, found, index, name = encoder.encode_rows(X[column])
            with warnings.catch_warnings():  # the notes below say it, once, at the end (workers warn apart)
                warnings.simplefilter("ignore", EncodingWarning)
                blocks.append(encoder.apply_error_policy(embeddings, found, index, name)[0])  # raises on "raise"
            for position, message in found.items():
                problems.setdefault(str(X.index[position]), f"{column}: {message}")
        out = pd.DataFrame(np.hstack(blocks), index=X.index, columns=self.get_feature_names_out())
        out.attrs["skmm"] = {"problems": problems}
        return out

    def get_feature_names_out(self, input_features=None):
        """The output columns: ``<column>__<feature>`` for each encoder's features.

        Parameters
        ----------
        input_features : None
            Ignored: the names come from the fitted encoders.

        Returns
        -------
        names : ndarray of str objects
        """
        return np.asarray([f"{column}__{name}" for column, encoder in self.encoders_
                           for name in encoder.get_feature_names_out()], dtype=object)
