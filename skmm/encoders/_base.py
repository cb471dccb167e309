"""What every skmm encoder shares: the sklearn contract, lazy model loading,
the embedding cache, the bad-input policy and pickling without weights."""

from __future__ import annotations

import numbers
import warnings

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .. import _registry
from .._batching import run_batched
from .._cache import make_key, resolve_cache
from .._device import resolve_device, resolve_precision
from .._inputs import as_item_list, is_missing, row_label

_ON_ERROR = ("raise", "zero", "nan")
# Bump when a change to skmm alters embeddings, so old cache entries are not reused.
_EMBEDDING_VERSION = 1


class EncodingError(ValueError):
    """Raised when some rows cannot be encoded; names their row labels."""


class BaseEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of skmm's encoders; not for direct use.

    Subclasses implement ``_load_bundle(device, state=None)`` (build the model,
    load ``state`` into it when given, then derive any inference copy: called
    through the process-wide registry, so clones share one loaded copy), ``_embedding_spec``
    (everything that changes an embedding, for cache keys), ``_pipeline``
    (the prepare / collate / forward triple for the shared batching loop) and
    ``_item_digest`` (a digest of one item's content).
    """

    _modality = "item"

    # -- sklearn API -------------------------------------------------------
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
        self._validate_common_params()
        self._validate_params_extra()
        _, _, column = as_item_list(X, input_name=self._modality + "s")
        self.n_features_in_ = 1
        if column is not None and isinstance(column, str):
            self.feature_names_in_ = np.asarray([column], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.device_ = str(resolve_device(self.device))
        self._bundle = None
        self._restored_state = None
        bundle = self._get_bundle()
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

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embedding_dim_), float32
        failed_mask : ndarray of shape (n_samples,), bool
            True where an item could not be encoded (filled per ``on_error``).
        """
        check_is_fitted(self, "fingerprint_")
        items, index, column = as_item_list(X, input_name=self._modality + "s")
        column = column if column is not None else self._default_column()
        problems = {}
        for position, item in enumerate(items):
            message = "missing value" if is_missing(item) else self._precheck_item(item)
            if message:
                problems[position] = message
        if problems and self.on_error == "raise":
            raise self._error(problems, index, column)  # before any model work is spent

        cache = resolve_cache(self.cache)
        todo = [p for p in range(len(items)) if p not in problems]
        keys = {}
        if cache is not None:
            for p in todo:
                digest = self._safe_digest(items[p])
                if digest is not None:
                    keys[p] = make_key(self.fingerprint_, digest)
        found = cache.get_many(list(set(keys.values()))) if cache is not None else {}
        missing = [p for p in todo if keys.get(p) not in found]

        embeddings = np.full((len(items), self.embedding_dim_), np.nan, dtype=np.float32)
        for p in todo:
            if keys.get(p) in found:
                embeddings[p] = found[keys[p]]
        if missing:
            # The same content under several rows is embedded once.
            unique_rows = {}
            for p in missing:
                unique_rows.setdefault(keys.get(p, ("row", p)), []).append(p)

            def compute(batch_keys):
                first_rows = [unique_rows[key][0] for key in batch_keys]
                computed, failures = self._embed_uncached([items[p] for p in first_rows])
                new_entries = {}
                for i, key in enumerate(batch_keys):
                    rows = unique_rows[key]
                    if i in failures:
                        for p in rows:
                            problems[p] = failures[i]
                        continue
                    embeddings[rows] = computed[i]
                    if not isinstance(key, tuple):
                        new_entries[key] = computed[i]
                if cache is not None and new_entries:
                    cache.put_many(new_entries)

            coordinator = getattr(cache, "coordinator", None)
            if coordinator is None:
                compute(list(unique_rows))
            else:
                # A disk cache shared by processes (n_jobs, dask workers): each key is computed by one
                # process; keys another process is computing are awaited, not recomputed.
                uncacheable = [key for key in unique_rows if isinstance(key, tuple)]
                if uncacheable:
                    compute(uncacheable)
                cacheable = [key for key in unique_rows if not isinstance(key, tuple)]
                # encode() has just looked these keys up: the schedule need not look again first.
                for action, batch in coordinator.schedule(cacheable, chunk=4 * self.batch_size,
                                                          known_missing=True):
                    if action == "compute":
                        try:
                            compute(batch)
                        finally:
                            coordinator.release(batch)
                    else:
                        for key, value in batch.items():
                            embeddings[unique_rows[key]] = value

        failed_mask = np.zeros(len(items), dtype=bool)
        if problems:
            if self.on_error == "raise":
                raise self._error(problems, index, column)
            failed_mask[list(problems)] = True
            warnings.warn(str(self._error(problems, index, column)).replace(
                "could not be encoded", f"could not be encoded; filled with {self.on_error}s"), stacklevel=2)
            embeddings[failed_mask] = 0.0 if self.on_error == "zero" else np.nan
        return embeddings, failed_mask

    @property
    def _n_features_out(self):
        return self.embedding_dim_

    # -- shared machinery --------------------------------------------------
    def _validate_common_params(self):
        if not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR}, got {self.on_error!r}")
        resolve_cache(self.cache)  # raises on a bad value
        resolve_precision(self.precision, resolve_device(self.device))

    def _validate_params_extra(self):
        """Subclass hook for its own parameter checks."""

    def _default_column(self):
        names = getattr(self, "feature_names_in_", None)
        return names[0] if names is not None else self._modality

    def _registry_key(self):
        return (type(self).__name__, self.device_, joblib.hash(self._embedding_spec()))

    def _get_bundle(self):
        """The loaded model, from the process-wide registry (loaded on first use)."""
        if self._bundle is None:
            if self._restored_state is not None:
                # Weights that have no name (random init, fine-tuned...) came in the pickle.
                self._bundle = self._load_bundle(self.device_, state={
                    k: torch.from_numpy(np.asarray(v)) for k, v in self._restored_state.items()})
            else:
                self._bundle = _registry.get_or_load(
                    self._registry_key(), lambda: self._load_bundle(self.device_)
                )
        return self._bundle

    def _fingerprint(self, state):
        """Hash of what determines an embedding here; ``state``: the weights as numpy, when unnamed."""
        spec = dict(self._embedding_spec(), encoder=type(self).__name__, version=_EMBEDDING_VERSION)
        spec["autocast"] = str(resolve_precision(self.precision, resolve_device(self.device_)))
        spec.update(self._runtime_spec())
        if not self._weights_are_named():
            spec["state"] = joblib.hash(state)
        return joblib.hash(spec)

    @staticmethod
    def _numpy_state(bundle):
        # A fresh C-order copy: a channels-last weight and its unpickled copy must hash alike (joblib
        # hashes strides, even those of length-1 axes).
        return {k: np.array(v.detach().cpu().numpy(), order="C") for k, v in bundle.module.state_dict().items()}

    def _runtime_spec(self):
        """Settings resolved at run time that change embeddings but not the loaded model."""
        return {}

    def _embed_uncached(self, items):
        bundle = self._get_bundle()
        device = resolve_device(self.device_)
        prepare, collate, forward = self._pipeline(bundle)
        return run_batched(
            items,
            prepare=prepare,
            collate=collate,
            forward=forward,
            device=device,
            autocast_dtype=resolve_precision(self.precision, device),
            batch_size=self.batch_size,
            num_workers=self._resolved_num_workers(device),
            progress=self.progress,
            desc=f"{type(self).__name__}",
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

    def _weights_are_named(self):
        return True

    def _error(self, problems, index, column):
        rows = sorted(problems)
        shown = "; ".join(f"row {row_label(index[p])}: {problems[p]}" for p in rows[:10])
        more = f"; and {len(rows) - 10} more" if len(rows) > 10 else ""
        return EncodingError(
            f"{len(rows)} {self._modality}(s) in column {column!r} could not be encoded "
            f"({shown}{more}). Set on_error='zero' or 'nan' to keep going."
        )

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

    # -- pickling ----------------------------------------------------------
    def __getstate__(self):
        # A copy: object.__getstate__ returns the live __dict__, which must not change.
        state = dict(super().__getstate__())
        bundle = state.pop("_bundle", None)
        state["_bundle"] = None
        if bundle is not None and not self._weights_are_named():
            # numpy, not torch tensors: skops.io can persist it, and it loads on any device.
            state["_restored_state"] = self._numpy_state(bundle)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "device_" in state:
            # Fitted on a GPU, loaded on a CPU-only machine: run where we are. The precision and the
            # decoding follow the device, so the cache keys must too.
            self.device_ = str(resolve_device(self.device, fallback=True))
            if self.device_ != state["device_"] and "fingerprint_" in state:
                self.fingerprint_ = self._fingerprint(getattr(self, "_restored_state", None))
