"""IntermediateFeatures: what an image or text backbone holds below its output, pooled, as features."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._inputs import to_text
from ._image_steps import PrepareImage, normalized_batch
from ._trunks import ImageSplit, TrunkSplitError, image_probe, text_layers
from .image import ImageEncoder
from .text import TextEncoder, _Tokenize

# "auto": a text model's last four layers; a CNN's features a third of its blocks from the top (measured on MVSA
# with EfficientNet-Lite0 and MiniLM: docs/benchmarks.md).
_AUTO_TEXT_DEPTHS = (3, 2, 1, 0)
_AUTO_IMAGE_FRACTION = 1 / 3


class IntermediateFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Pooled hidden states of an image or text encoder's backbone, read at chosen depths.

    An encoder's embedding is its backbone's last layer, pooled: what the
    model learnt to say about a whole image or sentence. The layers below
    hold what it summarises away (a CNN's textures, colours and local
    patterns; a transformer's words in context before its last layers), which
    a task the backbone was not trained for can read better. Each item runs
    through the encoder's own preparation, batching and cache (keys of their
    own), so a second fit or a clone reads it from the cache.

    Parameters
    ----------
    encoder : ImageEncoder or TextEncoder
        Its model, device, precision, batch size, cache and ``on_error`` are
        used; it is cloned and fitted.
    depths : "auto", int, or tuple or list of int, default="auto"
        Where to read, in blocks from the top as
        :class:`~skmm.MultimodalNetClassifier`'s ``train_blocks`` counts
        them: ``k`` is what enters the top ``k`` blocks, ``0`` the output of
        the last (a transformer's layers; a CNN's blocks as
        :mod:`skmm.encoders.trunks` finds them). ``"auto"``: the last four
        layers of a text model (``(3, 2, 1, 0)``), a CNN's features a third
        of its blocks from the top (EfficientNet-Lite0: ``5``, the output of
        its fifth stage).

    Attributes
    ----------
    encoder_ : ImageEncoder or TextEncoder
        The fitted clone of ``encoder``.
    depths_ : tuple of int
        ``depths`` resolved.
    n_features_out_ : int
        Per depth, a text model's width (the mean of its token states) or
        twice a CNN's channels there (their mean and their maximum over the
        image).
    n_features_in_ : int
        Always 1: one column of items.

    Examples
    --------
    >>> from skmm import TextEncoder
    >>> from skmm.encoders import IntermediateFeatures
    >>> features = IntermediateFeatures(TextEncoder(device="cpu", cache=None), depths=(1, 0))
    >>> features.fit_transform(["a photo of a cat", "a kitten"]).shape
    (2, 768)
    """

    _parameter_constraints = {
        "encoder": [HasMethods(["encode_rows", "load_backbone"])],
        "depths": [StrOptions({"auto"}), Integral, tuple, list],
    }

    def __init__(self, encoder, depths="auto"):
        self.encoder = encoder
        self.depths = depths

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit a clone of the encoder (no item is read) and find its blocks.

        Parameters
        ----------
        X : list, ndarray, pandas Series or one-column DataFrame
            The items.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        if not isinstance(self.encoder, (ImageEncoder, TextEncoder)):
            raise TypeError(f"encoder must be an ImageEncoder or a TextEncoder, got {type(self.encoder).__name__}")
        self.encoder_ = clone(self.encoder).fit(X)
        self.n_features_in_ = 1
        self._reader = _reader(self.encoder_, self.depths)
        self.depths_ = self._reader.depths
        self.n_features_out_ = self._reader.width
        return self

    def transform(self, X):
        """The pooled hidden states of each item, side by side for the depths.

        Parameters
        ----------
        X : list, ndarray, pandas Series or one-column DataFrame
            The items.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), float32
            ``n_features_out_`` columns. Items that failed: as the encoder's ``on_error`` says (raise,
            zeros or NaN).
        """
        check_is_fitted(self, "n_features_out_")
        outputs, problems, index, column = self.encoder_.encode_rows(X, trunk=self._reader)
        features = np.full((len(outputs), self.n_features_out_), np.nan, dtype=np.float32)
        for position, output in enumerate(outputs):
            if output is not None:
                features[position] = output
        features, _ = self.encoder_.apply_error_policy(features, problems, index, column)
        return features

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags


def _resolve_depths(depths, n_blocks, text):
    if isinstance(depths, str):
        depths = tuple(d for d in _AUTO_TEXT_DEPTHS if d < n_blocks) if text else (
            max(1, round(n_blocks * _AUTO_IMAGE_FRACTION)),)
    depths = (depths,) if isinstance(depths, Integral) else tuple(depths)
    if not depths or any(not isinstance(d, Integral) or not 0 <= d < n_blocks for d in depths):
        raise ValueError(f"depths must count blocks from the top, each in [0, {n_blocks - 1}] (the model has "
                         f"{n_blocks} blocks), got {depths!r}")
    return tuple(int(d) for d in depths)


def _reader(encoder, depths):
    """The trunk (see :mod:`skmm.encoders.trunks`) that reads ``encoder``'s backbone at ``depths``."""
    bundle = encoder.load_backbone()
    if isinstance(encoder, TextEncoder):
        auto_model = bundle.module[0].auto_model
        depths = _resolve_depths(depths, len(text_layers(auto_model)), text=True)
        return _TextLayerMeans(depths, auto_model.config.hidden_size)
    probe = image_probe(encoder, bundle)
    try:
        split = ImageSplit.of(bundle.module, probe, bundle.module)
    except (ValueError, RuntimeError) as error:  # a ViT's blocks do not run on a feature map, say
        raise TrunkSplitError(f"{encoder.model!r} is not a CNN whose blocks can be read one by one ({error})") from None
    depths = _resolve_depths(depths, len(split.blocks), text=False)
    return _ImageBlockPools(split, depths, probe, bundle.module)


class _TextLayerMeans:
    """Each text's token states after chosen layers, each averaged over its tokens."""

    def __init__(self, depths, hidden_size):
        self.depths, self.width = depths, len(depths) * int(hidden_size)
        self.spec = {"kind": "text-layer-means", "depths": list(depths)}

    def pipeline(self, encoder, bundle):
        max_length = encoder.max_seq_length or bundle.max_seq_length
        return to_text, _Tokenize(bundle.tokenizer, max_length), _RunTextLayerMeans(bundle.module, self.depths)


class _RunTextLayerMeans:
    def __init__(self, module, depths):
        self.module, self.depths = module, depths

    def __call__(self, features):
        states = self.module[0].auto_model(**features, output_hidden_states=True).hidden_states
        mask = features["attention_mask"][..., None].float()
        count = mask.sum(dim=1).clamp(min=1.0)
        return torch.cat([(states[len(states) - 1 - d].float() * mask).sum(dim=1) / count for d in self.depths],
                         dim=1)


class _ImageBlockPools:
    """Each image's feature maps entering chosen blocks (the units below them run in order), mean- and max-pooled."""

    def __init__(self, split, depths, probe, module):
        self.split, self.depths = split, depths
        self.stops = sorted({split.cut(d) for d in depths})
        with torch.inference_mode():
            pooled = _pool_at(split, module, self.stops, probe)
        self.width = int(pooled.shape[1])
        self.spec = {"kind": "image-block-pools", "until": [split.names[s] if s < len(split.names) else "end"
                                                            for s in self.stops]}

    def pipeline(self, encoder, bundle):
        prepare = PrepareImage(encoder.data_config(bundle), bool(encoder.crop))
        return prepare, torch.stack, _RunImageBlockPools(bundle, self.split, self.stops)


class _RunImageBlockPools:
    def __init__(self, bundle, split, stops):
        self.bundle, self.split, self.stops = bundle, split, stops

    def __call__(self, batch):
        return _pool_at(self.split, self.bundle.folded, self.stops, normalized_batch(batch, self.bundle))


def _pool_at(split, module, stops, x):
    """The mean and maximum of each channel of the feature maps after the units ``[:stop]``, for each stop."""
    pooled, start = [], 0
    for stop in stops:
        x = split.run(module, start, stop, x)
        start = stop
        features = x.float()
        pooled += [features.mean(dim=(2, 3)), features.amax(dim=(2, 3))]
    return torch.cat(pooled, dim=1)
