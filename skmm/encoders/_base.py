"""What every skmm encoder shares: the sklearn contract, lazy model loading,
the embedding cache, the bad-input policy and pickling without weights."""

from __future__ import annotations

import functools
import os
import warnings
from numbers import Integral

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._defaults import ON_ERROR
from .._batching import run_batched
from .._compat import upgrade_encoder_state
from .._cache import fetch_or_compute, make_key, resolve_cache
from .._device import PRECISIONS, autocast_dtype, resolve_device, resolve_precision
from .._inputs import as_item_list, is_missing, row_name
from .._messages import caller_stacklevel, first_and_more
from .._pickling import DeviceBoundPickling
from .._table import remember_columns
from ._backends import BACKENDS, resolve_backend
from ._model import ModelLoadingMixin

class EncodingWarning(UserWarning):
    """Some rows could not be encoded and were filled per ``on_error="zero"`` / ``"nan"``; names their rows.

    Its own category, so that a caller that reports those rows itself (the
    command line, :class:`~skmm.encoders.EmbedColumns`) silences this warning
    and no other.
    """


class EncodingError(ValueError):
    """Raised when some rows cannot be encoded; names their rows.

    Attributes
    ----------
    column : str
        The column (or modality) the items came from.
    problems : dict
        Row label (the input's index) -> what went wrong with that row.
    """

    def __init__(self, message, *, column=None, problems=None):
        super().__init__(message)
        self.column = column
        self.problems = dict(problems or {})

    def __reduce__(self):  # keep the column and rows when it travels between processes (Dask, joblib)
        return functools.partial(EncodingError, column=self.column, problems=self.problems), (str(self),)


class BaseEncoder(DeviceBoundPickling, ClassNamePrefixFeaturesOutMixin, TransformerMixin, ModelLoadingMixin,
                  BaseEstimator):
    """Base class of skmm's encoders; not for direct use.

    Subclasses implement ``_load_bundle(device, state=None)`` (build the model,
    load ``state`` into it when given, then derive any inference copy: called
    through the process-wide registry, so clones share one loaded copy), ``_embedding_spec``
    (everything that changes an embedding, for cache keys), ``_pipeline``
    (the prepare / collate / forward triple for the shared batching loop) and
    ``_item_digest`` (a digest of one item's content).
    """

    _modality = "item"
    _parameter_constraints = {
        "device": [str, torch.device],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "precision": [StrOptions(set(PRECISIONS))],
        "num_workers": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "progress": ["boolean"],
        "cache": [str, os.PathLike, joblib.Memory, None, Options(bool, {False})],
        "on_error": [StrOptions(set(ON_ERROR))],
        "backend": [StrOptions(set(BACKENDS))],
    }

    # -- sklearn API -------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters and load the model.

        Parameters
        ----------
        X : list, ndarray, pandas Series or one-column DataFrame
            The items. Only their count and column name are used: encoders are
            pretrained and do not learn from ``X``.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted encoder.
        """
        resolve_cache(self.cache)  # raises on a value of the right type that names no cache
        device = resolve_device(self.device)
        backend = resolve_backend(self.backend, device, self._modality)  # missing: said before any work
        precision = resolve_precision(self.precision, device, backend, warn=True)  # said before any work
        self._validate_params_extra()
        _, _, column = as_item_list(X, input_name=self._modality + "s")
        remember_columns(self, [column])
        self.device_ = str(device)
        self.precision_ = precision
        self._bundle = None
        self._restored_state = None
        bundle = self.load_backbone()
        self.embedding_dim_ = int(bundle.embedding_dim)
        self.fingerprint_ = self._fingerprint(None if self._weights_are_named() else self._numpy_state(bundle))
        return self

    def transform(self, X):
        """Embed ``X``.

        Parameters
        ----------
        X : list, ndarray, pandas Series or one-column DataFrame
            The items, mixed types allowed.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embedding_dim_), float32
            Rows that failed are zeros or NaN under ``on_error="zero"`` or
            ``"nan"`` (a warning names them); ``on_error="raise"`` raises
            :class:`EncodingError` instead.
        """
        embeddings, failed = self.encode(X)
        return embeddings

    def encode(self, X):
        """Embed ``X`` and also return which rows failed.

        Four steps: cheap checks of every item (a bad item under
        ``on_error="raise"`` stops here, before any model work); a content
        key per item (one image under two names shares one); the cache
        serves what it has and the model embeds the rest, each distinct
        content once; the error policy fills the rows that failed.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embedding_dim_), float32
        failed_mask : ndarray of shape (n_samples,), bool
            True where an item could not be encoded (filled per ``on_error``).
        """
        embeddings, problems, index, column = self.encode_rows(X)
        return self.apply_error_policy(embeddings, problems, index, column)

    def encode_rows(self, X, trunk=None):
        """The steps of :meth:`encode` but the error policy: embeddings (NaN where an item failed), and
        what went wrong where (position -> message), the row labels and the column name.

        Under ``on_error="raise"`` a bad item found by the cheap checks still
        raises at once; later failures are returned. With ``trunk`` (see
        :mod:`skmm.encoders.trunks`), each item's output of that part of the
        model instead, as a list of arrays of any shape (None where it failed),
        cached under its own keys.
        """
        check_is_fitted(self, "fingerprint_")
        items, index, column = as_item_list(X, input_name=self._modality + "s")
        items = self._resolve_items(items)
        column = column if column is not None else self._default_column()
        problems = self._precheck(items)
        if problems and self.on_error == "raise":
            raise self.encoding_error(problems, index, column)  # before any model work is spent
        cache = resolve_cache(self.cache)
        fingerprint = self.fingerprint_ if trunk is None else joblib.hash((self.fingerprint_, trunk.spec))
        rows_by_key = self._rows_by_content(items, [p for p in range(len(items)) if p not in problems], cache,
                                            fingerprint)

        def compute(keys):
            embedded, failures = self._embed_uncached([items[rows_by_key[key][0]] for key in keys], desc=column,
                                                      trunk=trunk)
            failed = {keys[i]: message for i, message in failures.items()}
            return {key: embedded[i] for i, key in enumerate(keys) if key not in failed}, failed

        values, failures = fetch_or_compute(cache, rows_by_key, compute, chunk=4 * self.batch_size)
        embeddings = (np.full((len(items), self.embedding_dim_), np.nan, dtype=np.float32) if trunk is None
                      else [None] * len(items))
        for key, rows in rows_by_key.items():
            if key not in values:
                problems.update({p: failures[key] for p in rows})
            elif trunk is None:
                embeddings[rows] = values[key]
            else:
                for p in rows:
                    embeddings[p] = values[key]
        return embeddings, problems, index, column

    @property
    def _n_features_out(self):
        return self.embedding_dim_

    # -- what the estimators and the command line use of an encoder ------------------------------
    @property
    def modality(self):
        """What one item is, in messages and progress bars: ``"image"`` or ``"text"``.

        Examples
        --------
        >>> from skmm import ImageEncoder
        >>> ImageEncoder().modality
        'image'
        """
        return self._modality

    def check_items(self, items):
        """The cheap checks :meth:`encode` starts with, alone: no model is loaded, no item decoded.

        Parameters
        ----------
        items : list
            The items, as :meth:`encode` reads them (relative image paths
            are resolved against ``root`` first).

        Returns
        -------
        problems : dict
            Position in ``items`` -> what is wrong there (a missing value, a
            wrong type, a file that does not exist), for the items that fail.

        Examples
        --------
        >>> from skmm import TextEncoder
        >>> TextEncoder().check_items(["a caption", None, ["not", "a", "text"]])
        {1: 'missing value', 2: 'a text must be str or bytes, got list'}
        """
        return self._precheck(self._resolve_items(items))

    def encoding_error(self, problems, index, column):
        """The :class:`EncodingError` that names the rows that failed, by their labels.

        Parameters
        ----------
        problems : dict
            Position -> what went wrong there (as :meth:`encode_rows` returns it).
        index : pandas.Index or sequence
            The row labels (``index[position]`` names a row).
        column : str
            The column the items came from.

        Returns
        -------
        error : EncodingError
            Not raised: the caller raises it, or reads its message.

        Examples
        --------
        >>> import pandas as pd
        >>> from skmm import TextEncoder
        >>> error = TextEncoder().encoding_error({1: "missing value"}, pd.Index(["a", "b"]), "caption")
        >>> error.problems
        {'b': 'missing value'}
        """
        rows = sorted(problems)
        return EncodingError(f"{self._failures(problems, index, column)}. Set on_error='zero' or 'nan' to keep going.",
                             column=column, problems={index[p]: problems[p] for p in rows})

    def _failures(self, problems, index, column):
        shown = first_and_more(sorted(problems), lambda p: f"{row_name(index, p)}: {problems[p]}")
        return f"{len(problems)} {self._modality}(s) in column {column!r} could not be encoded ({shown})"

    def apply_error_policy(self, embeddings, problems, index, column):
        """The last step of :meth:`encode`: what ``on_error`` does with the rows that failed.

        Parameters
        ----------
        embeddings : ndarray of shape (n_samples, embedding_dim_)
            As :meth:`encode_rows` returns them; the failed rows are
            filled in place.
        problems : dict
            Position -> what went wrong there.
        index : pandas.Index or sequence
            The row labels, for the message.
        column : str
            The column the items came from, for the message.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embedding_dim_)
            Zeros or NaN in the failed rows (``on_error="zero"`` or ``"nan"``).
        failed_mask : ndarray of shape (n_samples,), bool
            True where a row failed.

        Raises
        ------
        EncodingError
            Under ``on_error="raise"``, when a row failed. Under the other
            policies a warning names the rows instead.

        Examples
        --------
        >>> import warnings
        >>> import numpy as np
        >>> from skmm import TextEncoder
        >>> encoder = TextEncoder(on_error="zero")
        >>> with warnings.catch_warnings(record=True):
        ...     embeddings, failed = encoder.apply_error_policy(np.ones((2, 3)), {1: "missing value"}, [0, 1], "text")
        >>> embeddings[1], failed
        (array([0., 0., 0.]), array([False,  True]))
        """
        failed_mask = np.zeros(len(embeddings), dtype=bool)
        if problems:
            if self.on_error == "raise":
                raise self.encoding_error(problems, index, column)
            failed_mask[list(problems)] = True
            warnings.warn(f"{self._failures(problems, index, column)}; their embeddings are {self.on_error}s "
                          "(in a ModalityFusion, those rows miss the modality)", EncodingWarning,
                          stacklevel=caller_stacklevel())
            embeddings[failed_mask] = 0.0 if self.on_error == "zero" else np.nan
        return embeddings, failed_mask

    # -- the steps of encode -----------------------------------------------
    def _resolve_items(self, items):
        """Subclass hook: items as the model's loader reads them (relative paths made absolute...)."""
        return items

    def _precheck(self, items):
        """Position -> message for the items that fail a cheap check (missing, wrong type, no such file)."""
        problems = {}
        for position, item in enumerate(items):
            message = "missing value" if is_missing(item) else self._precheck_item(item)
            if message:
                problems[position] = message
        return problems

    def _rows_by_content(self, items, positions, cache, fingerprint):
        """Content key -> the positions holding that content (``("row", p)`` where no key can be made)."""
        rows = {}
        for p in positions:
            digest = self._safe_digest(items[p]) if cache is not None else None
            key = make_key(fingerprint, digest) if digest is not None else ("row", p)
            rows.setdefault(key, []).append(p)
        return rows

    # -- shared machinery --------------------------------------------------
    def _validate_params_extra(self):
        """Subclass hook for checks beyond the parameter constraints."""

    def _default_column(self):
        names = getattr(self, "feature_names_in_", None)
        return names[0] if names is not None else self._modality

    def _embed_uncached(self, items, desc=None, trunk=None):
        bundle = self.load_backbone()
        device = resolve_device(self.device_)
        prepare, collate, forward = self._pipeline(bundle) if trunk is None else trunk.pipeline(self, bundle)
        return run_batched(
            items,
            prepare=prepare,
            collate=collate,
            forward=forward,
            device=device,
            # A compiled runtime applies the precision itself; torch (the trunks too) through autocast.
            autocast_dtype=(autocast_dtype(self.precision_)
                            if trunk is not None or self._resolved_backend() == "torch" else None),
            batch_size=self.batch_size,
            num_workers=self._resolved_num_workers(device),
            progress=self.progress,
            desc=f"{type(self).__name__} ({desc})" if desc is not None else type(self).__name__,
            unit=self._modality,
        )

    def _resolved_num_workers(self, device):
        return int(self.num_workers) if self.num_workers != "auto" else 0

    def _safe_digest(self, item):
        try:
            return self._item_digest(item)
        except Exception:  # unreadable: left to the loader, which reports it per row
            return None

    def _precheck_item(self, item):
        """Cheap check of one item before any model work; a message or None."""
        return None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The input is one column of images or texts, not a numeric 2-D array:
        # sklearn's data-driven checks do not apply (tests/test_encoders.py
        # runs the API checks and tests the same properties on real items).
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    # -- pickling: a backbone reloads by its name; weights without one travel as numpy --------
    _device_bound = {"_bundle": "_restored_state"}

    def _save_device_bound(self, name, bundle):
        return None if self._weights_are_named() else self._numpy_state(bundle)

    def _upgraded_state(self, state):
        return upgrade_encoder_state(type(self), state)

    def _load_device_bound(self, saved):
        self._bundle, self._restored_state = None, saved.get("_bundle")  # the backbone loads on first use
        if "device_" not in vars(self):
            return
        # Run where we are (fitted on a GPU, loaded on a CPU-only machine), and key the cache by what this
        # version and this machine compute: a saved fingerprint may come from another version.
        where = str(resolve_device(self.device, fallback=True))
        if "fingerprint_" in vars(self):
            self.move_to(where)
        else:
            self.device_ = where
            self.precision_ = self._resolved_precision()
