"""How an skmm encoder holds its model: loaded once per process, compiled by a backend, and fingerprinted.

The fingerprint is what keys the embedding cache: it changes with anything
that changes an embedding (the model, its weights, the device's precision,
the backend), so that no cached embedding is ever served for another model.
"""

from __future__ import annotations

import joblib
import torch
from sklearn.utils.validation import check_is_fitted

from .. import _registry
from .._device import autocast_dtype, resolve_device, resolve_precision
from .._pickling import numpy_weights, torch_weights
from ._backends import CompiledModel, backend_version, export_folder, export_onnx, resolve_backend

# Bump when a change to skmm alters embeddings, so old cache entries are not reused.
_EMBEDDING_VERSION = 1


class ModelLoadingMixin:
    """The model side of :class:`~skmm.encoders._base.BaseEncoder`: loading, device moves, compiling, cache keys.

    The encoder provides ``_load_bundle(device, state=None)``,
    ``_embedding_spec()`` and ``_modality``, and the attributes ``device_``,
    ``precision_``, ``_bundle`` and ``_restored_state`` that ``fit`` sets.
    """

    def load_backbone(self):
        """The fitted encoder's model, loaded on first use: once per process, however many clones use it.

        The model comes from the process-wide registry
        (:func:`skmm.clear_model_registry` forgets it); weights that have no
        name (random, fine-tuned) come from the encoder itself, restored
        from its pickle.

        Returns
        -------
        bundle : object
            The model and what running it needs: ``module`` (the torch
            model), ``embedding_dim``, and what the encoder's kind adds (an
            image encoder's preprocessing ``config``, ``mean`` and ``std``...).

        Examples
        --------
        >>> from skmm import ImageEncoder
        >>> encoder = ImageEncoder(model="timm:test_efficientnet", weights=None, device="cpu").fit(["a.jpg"])
        >>> encoder.load_backbone().embedding_dim
        256
        """
        if self._bundle is None:
            if self._restored_state is not None:
                # Weights that have no name (random init, fine-tuned...) came in the pickle.
                self._bundle = self._load_bundle(self.device_, state=torch_weights(self._restored_state))
            else:
                self._bundle = _registry.get_or_load(
                    self._registry_key(), lambda: self._load_bundle(self.device_)
                )
        return self._bundle

    def move_to(self, device):
        """Run this fitted encoder on ``device`` from now on; returns ``self``.

        The model reloads there on first use, and the cache keys follow the
        device (its precision and decoding change the embeddings), so
        embeddings made on one device are never served as another's. A device
        this machine lacks falls back to the CPU with a warning (what a model
        fitted on a GPU does when it is loaded on a CPU-only machine).

        Parameters
        ----------
        device : str or torch.device
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...

        Returns
        -------
        self : object
            The encoder, now on ``device``.

        Examples
        --------
        >>> from skmm import ImageEncoder
        >>> encoder = ImageEncoder(model="timm:test_efficientnet", weights=None, device="cpu").fit(["a.jpg"])
        >>> encoder.move_to("cpu").device_
        'cpu'
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

    # -- what the loaded model and its cache keys depend on ------------------------------------
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
        return numpy_weights(bundle.module)

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

    def _weights_are_named(self):
        """Subclass hook: whether the weights have a name to load them by (else the pickle carries them)."""
        return True
