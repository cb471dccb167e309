"""What every skmm encoder shares: the sklearn contract, lazy model loading,
the embedding cache, the bad-input policy and pickling without weights."""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from numbers import Integral

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import _registry
from .._defaults import ON_ERROR
from .._batching import run_batched
from .._cache import fetch_or_compute, make_key, resolve_cache
from .._device import PRECISIONS, autocast_dtype, resolve_device, resolve_precision
from .._inputs import as_item_list, is_missing, row_name
from ._backends import BACKENDS, CompiledModel, backend_version, export_folder, export_onnx, resolve_backend

# Bump when a change to skmm alters embeddings, so old cache entries are not reused.
_EMBEDDING_VERSION = 1


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
        self._validate_params()
        resolve_cache(self.cache)  # raises on a value of the right type that names no cache
        device = resolve_device(self.device)
        backend = resolve_backend(self.backend, device, self._modality)  # missing: said before any work
        precision = resolve_precision(self.precision, device, backend, warn=True)  # said before any work
        self._validate_params_extra()
        _, _, column = as_item_list(X, input_name=self._modality + "s")
        self.n_features_in_ = 1
        if column is not None and isinstance(column, str):
            self.feature_names_in_ = np.asarray([column], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.device_ = str(device)
        self.precision_ = precision
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
        return self._apply_error_policy(embeddings, problems, index, column)

    def encode_rows(self, X, trunk=None):
        """The steps of :meth:`encode` but the error policy: embeddings (NaN where an item failed), and
        what went wrong where (position -> message), the row labels and the column name.

        Under ``on_error="raise"`` a bad item found by the cheap checks still
        raises at once; later failures are returned. With ``trunk`` (see
        :mod:`skmm.encoders._trunks`), each item's output of that part of the
        model instead, as a list of arrays of any shape (None where it failed),
        cached under its own keys.
        """
        check_is_fitted(self, "fingerprint_")
        items, index, column = as_item_list(X, input_name=self._modality + "s")
        items = self._resolve_items(items)
        column = column if column is not None else self._default_column()
        problems = self._precheck(items)
        if problems and self.on_error == "raise":
            raise self._error(problems, index, column)  # before any model work is spent
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

    def move_to(self, device):
        """Run this fitted encoder on ``device`` from now on; returns ``self``.

        The model reloads there on first use, and the cache keys follow the
        device (its precision and decoding change the embeddings), so
        embeddings made on one device are never served as another's. A device
        this machine lacks falls back to the CPU with a warning (what a model
        fitted on a GPU does when it is loaded on a CPU-only machine).
        """
        check_is_fitted(self, "fingerprint_")
        state = None
        if not self._weights_are_named():
            state = self._restored_state if self._bundle is None else self._numpy_state(self._bundle)
            self._restored_state = state
        self.device_ = str(resolve_device(device, fallback=True))
        self.precision_ = self._resolved_precision(warn=True)
        self._bundle = None
        self.fingerprint_ = self._fingerprint(state)
        return self

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

    def _apply_error_policy(self, embeddings, problems, index, column):
        failed_mask = np.zeros(len(embeddings), dtype=bool)
        if problems:
            if self.on_error == "raise":
                raise self._error(problems, index, column)
            failed_mask[list(problems)] = True
            warnings.warn(str(self._error(problems, index, column)).replace(
                "could not be encoded", f"could not be encoded; filled with {self.on_error}s"), stacklevel=3)
            embeddings[failed_mask] = 0.0 if self.on_error == "zero" else np.nan
        return embeddings, failed_mask

    # -- shared machinery --------------------------------------------------
    def _validate_params_extra(self):
        """Subclass hook for checks beyond the parameter constraints."""

    def _default_column(self):
        names = getattr(self, "feature_names_in_", None)
        return names[0] if names is not None else self._modality

    def _registry_key(self):
        # The precision too: a compiled model is compiled for one.
        return (type(self).__name__, self.device_, joblib.hash(self._embedding_spec()), self._resolved_backend(),
                self.precision_)

    def _resolved_backend(self):
        return resolve_backend(self.backend, self.device_, self._modality)

    def _resolved_precision(self, warn=False):
        """What the model computes in on ``device_`` with the resolved backend (see :func:`resolve_precision`)."""
        return resolve_precision(self.precision, self.device_, self._resolved_backend(), warn=warn)

    def _compile(self, make, input_names, state):
        """The model compiled by the resolved backend (exported once, then read from disk), or None for torch.

        ``make()`` returns ``(module, example_inputs, dynamic_axes)`` for the export; ``state``: the weights
        that came in a pickle, when they have no name.
        """
        backend = self._resolved_backend()
        if backend == "torch":
            return None
        key = dict(self._embedding_spec(), encoder=type(self).__name__, inputs=list(input_names),
                   backend=backend_version(backend), exporter=backend_version("torch"),
                   state=None if state is None else joblib.hash({k: v.detach().cpu().numpy() for k, v in state.items()}))
        # The ONNX file holds the fp32 graph whatever the precision: the runtime applies the precision when it
        # compiles the file, so one export serves both and the precision is keyed where it acts (fingerprint).
        path = export_onnx(key, export_folder(self.cache), make, input_names)
        return CompiledModel(backend, path, input_names, precision=self.precision_)

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
        device = resolve_device(self.device_)
        precision = self.precision_
        spec["autocast"] = str(autocast_dtype(precision))  # "None" for fp32: the key caches made before had
        if device.type == "cuda" and precision == "fp32":  # fp32 convolutions and products may run in TF32 there
            spec["cuda_fp32"] = [str(getattr(b, "fp32_precision", "")) for b in (torch.backends.cuda.matmul,
                                                                                  torch.backends.cudnn.conv)]
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
        """Settings resolved at run time that change embeddings but not the loaded model (torch: none, so
        caches made before backends existed stay valid)."""
        backend = self._resolved_backend()
        if backend == "torch":
            return {}
        spec = {"backend": backend_version(backend)}
        if backend == "openvino":
            # Entries made before precision was explicit carry no such key: they may be bf16 (OpenVINO's default
            # on a bf16 CPU), so they are recomputed rather than served as fp32.
            spec["inference_precision"] = self.precision_
        return spec

    def _embed_uncached(self, items, desc=None, trunk=None):
        bundle = self._get_bundle()
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

    def _weights_are_named(self):
        return True

    def _error(self, problems, index, column):
        rows = sorted(problems)
        shown = "; ".join(f"{row_name(index, p)}: {problems[p]}" for p in rows[:10])
        more = f"; and {len(rows) - 10} more" if len(rows) > 10 else ""
        return EncodingError(
            f"{len(rows)} {self._modality}(s) in column {column!r} could not be encoded "
            f"({shown}{more}). Set on_error='zero' or 'nan' to keep going.",
            column=column, problems={index[p]: problems[p] for p in rows})

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
        # A parameter added since the encoder was saved takes its default (what the older code did).
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if name != "self" and name not in state and parameter.default is not inspect.Parameter.empty:
                state[name] = parameter.default
        super().__setstate__(state)
        if "device_" in state:
            # Run where we are (fitted on a GPU, loaded on a CPU-only machine), and key the cache by what
            # this version and this machine compute: a saved fingerprint may come from another version.
            where = str(resolve_device(self.device, fallback=True))
            if "fingerprint_" in state:
                self.move_to(where)
            else:
                self.device_ = where
                self.precision_ = self._resolved_precision()
