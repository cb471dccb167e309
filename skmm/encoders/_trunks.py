"""A backbone cut in two: the frozen trunk below a block (run once per item, cached) and the top above it.

How the "blocks" of each family are found:

- **CNNs** (timm and torchvision: EfficientNet, MobileNet, ResNet, ConvNeXt,
  RegNet, VGG...): the model's top-level modules in order, up to its pooling,
  with every ``nn.Sequential`` of blocks opened up (a ``Sequential`` of plain
  layers, conv + norm + activation, stays one unit). The units that came out
  of such a container are the blocks; ``k`` top blocks means the last ``k``
  of them and every unit after them (the head convolution and its norm).
  The split is checked on a probe input: the units run in order must give
  the model's own features, else the model (a ViT: class token, position
  embeddings) supports ``train_blocks=0`` only, and says so.
- **Text** (sentence-transformers over a BERT-like model: BERT, MiniLM,
  RoBERTa, MPNet...): the model's list of transformer layers; the trunk's
  output is the hidden states entering layer ``L - k`` with the attention
  mask, the top is the last ``k`` layers (with the relative position bias the
  encoder adds to each, where it has one: MPNet) and the model's own pooling.
  Checked the same way.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ._image_steps import PrepareImage, normalized_batch

_PLAIN = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.ReLU, nn.ReLU6,
          nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Identity, nn.Dropout, nn.MaxPool2d)
_POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)


class TrunkSplitError(ValueError):
    """The backbone cannot be cut into a trunk and trainable top blocks."""


def _is_pooling(module):
    return isinstance(module, _POOLING) or type(module).__name__ in ("SelectAdaptivePool2d", "ClassifierHead")


def _opens_up(module):
    return isinstance(module, (nn.Sequential, nn.ModuleList)) and any(
        not isinstance(child, _PLAIN) and not (isinstance(child, nn.Sequential)
                                               and all(isinstance(c, _PLAIN) for c in child))
        for child in module)


def _units(module):
    """``(qualified name, module, is_block)`` in forward order, up to the pooling."""
    units = []

    def visit(prefix, container, inside):
        for name, child in container.named_children():
            qualified = f"{prefix}{name}"
            if not inside and _is_pooling(child):
                return False
            if _opens_up(child):
                visit(qualified + ".", child, True)
            else:
                units.append((qualified, child, inside))
        return True

    visit("", module, False)
    return units


def image_probe(encoder, bundle):
    """Two seeded random images at ``encoder``'s input size, on its device: what a split is checked on."""
    size = encoder.data_config(bundle).input_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.randn(2, 3, size, size, device=bundle.mean.device)


class ImageSplit:
    """A CNN as an ordered list of units, of which some are blocks; ``cut(k)`` is where the top ``k`` start."""

    def __init__(self, units):
        self.names = [name for name, _, _ in units]
        self.blocks = [i for i, (_, _, is_block) in enumerate(units) if is_block]

    @classmethod
    def of(cls, module, probe, embedding):
        """The split of ``module``, checked: its units in order, average-pooled, must give ``embedding(probe)``."""
        split = cls(_units(module))
        if not split.blocks:
            raise TrunkSplitError("no sequence of blocks found in the model")
        with torch.inference_mode():
            features = split.run(module, 0, len(split.names), probe)
            pooled = features.mean(dim=(2, 3)) if features.ndim == 4 else features
            expected = embedding(probe).reshape(len(probe), -1)
        if pooled.shape != expected.shape or not torch.allclose(pooled, expected, rtol=1e-3, atol=1e-4):
            raise TrunkSplitError("running the model's top-level modules in order does not reproduce its features "
                                  "(its forward is not a sequence of stages)")
        return split

    def cut(self, k):
        """Index of the first unit of the top: ``k`` blocks from the last (``"all"``: the whole model)."""
        if k == "all" or k >= len(self.blocks):
            return 0
        if k == 0:
            return len(self.names)
        return self.blocks[-k]

    def run(self, module, start, stop, x):
        for name in self.names[start:stop]:
            x = module.get_submodule(name)(x)
        return x

    def part(self, module, start, stop):
        """A trainable copy of the units ``start:stop`` of ``module``, as one sequential module."""
        return nn.Sequential(*[copy.deepcopy(module.get_submodule(name)) for name in self.names[start:stop]])


def text_layers(auto_model):
    """The transformer layers of a Hugging Face encoder: the longest ModuleList of modules of one class."""
    best = None
    for _, module in auto_model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            if best is None or len(module) > len(best):
                best = module
    if best is None:
        raise TrunkSplitError("no list of transformer layers found in the text model")
    return best


def additive_mask(attention_mask, dtype):
    """A (batch, 1, 1, tokens) mask to add to attention scores: 0 where a token is, very negative at padding."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class PositionBias(nn.Module):
    """The attention bias an encoder computes once from the tokens' relative positions and adds in every layer.

    MPNet's encoder does this (``compute_position_bias``, from a table of its
    own, not of a layer); BERT-like models have nothing of the kind. A frozen
    copy of that encoder without its layers, so that layers run one by one
    get the bias the model gives them.
    """

    def __init__(self, encoder, layers):
        super().__init__()
        self.encoder = copy.deepcopy(encoder, memo={id(layers): nn.ModuleList()}).requires_grad_(False)

    @classmethod
    def of(cls, auto_model, layers):
        """The bias of the module that holds ``layers``, or None where it computes none."""
        for module in auto_model.modules():
            if any(child is layers for child in module.children()):
                return cls(module, layers) if callable(getattr(module, "compute_position_bias", None)) else None
        return None

    def forward(self, hidden):
        return self.encoder.compute_position_bias(hidden)


def run_text_layers(layers, hidden, attention_mask, position_bias=None):
    """``layers`` in order from ``hidden``, as the model runs them (``position_bias``: a :class:`PositionBias`)."""
    mask = additive_mask(attention_mask, hidden.dtype)
    extra = {} if position_bias is None else {"position_bias": position_bias(hidden)}
    for layer in layers:
        output = layer(hidden, attention_mask=mask, **extra)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden


def check_text_split(auto_model, features):
    """The model's last hidden states, against its layers run one by one from its first hidden states."""
    layers = text_layers(auto_model)
    with torch.inference_mode():
        states = auto_model(**features, output_hidden_states=True).hidden_states
        if len(states) != len(layers) + 1:
            raise TrunkSplitError("the text model's hidden states do not match its layers")
        mask = features["attention_mask"]
        rerun = run_text_layers(layers, states[0], mask, PositionBias.of(auto_model, layers))
        keep = mask[..., None].to(rerun.dtype)
        if not torch.allclose(rerun * keep, states[-1] * keep, rtol=1e-3, atol=1e-4):
            raise TrunkSplitError("the text model's layers, run one by one, do not reproduce its output")
    return layers


class ImageTrunk:
    """What an :class:`~skmm.ImageEncoder`'s CNN makes of each image below unit ``start``.

    ``start`` = the number of units: the final feature map (``pooled``: its
    average, the encoder's own embedding). ``view`` > 0: an augmented view
    of the image (a random resized crop, a flip, a small rotation), drawn from
    a seed made of the image's pixels and the view number, so that a view is
    the same whatever the rows around it (and so can be cached by content).
    """

    def __init__(self, split, start, pooled=False, view=0):
        self.split, self.start, self.pooled, self.view = split, start, pooled, view
        self.spec = {"kind": "image-trunk", "until": split.names[start] if start < len(split.names) else "end",
                     "pooled": bool(pooled), "view": int(view), "augmentation": AugmentedImage.VERSION}

    def pipeline(self, encoder, bundle):
        config = encoder.data_config(bundle)
        prepare = PrepareImage(config, bool(encoder.crop))
        if self.view:
            prepare = AugmentedImage(prepare, config, self.view)
        return prepare, torch.stack, _RunImageTrunk(bundle, self.split, self.start, self.pooled)


class _RunImageTrunk:
    def __init__(self, bundle, split, start, pooled):
        self.bundle, self.split, self.start, self.pooled = bundle, split, start, pooled

    def __call__(self, batch):
        x = self.split.run(self.bundle.folded, 0, self.start, normalized_batch(batch, self.bundle))
        x = x.float()
        return x.mean(dim=(2, 3)) if self.pooled and x.ndim == 4 else list(x)


class AugmentedImage:
    """The encoder's own preparation of an image, after a seeded random resized crop, flip and rotation."""

    VERSION = 1
    SCALE, RATIO, DEGREES = (0.6, 1.0), (3 / 4, 4 / 3), 10.0

    def __init__(self, prepare, config, view):
        self.prepare, self.config, self.view = prepare, config, view

    def __call__(self, item):
        import hashlib

        import numpy as np
        from PIL import Image

        from .._inputs import open_image

        image = open_image(item, draft_size=self.config.resize_size)
        seed = hashlib.blake2b(image.tobytes()[::97] + f"{image.size}:{self.view}".encode(), digest_size=8)
        rng = np.random.default_rng(int.from_bytes(seed.digest(), "little"))
        width, height = image.size
        area = width * height * rng.uniform(*self.SCALE)
        ratio = np.exp(rng.uniform(*np.log(self.RATIO)))
        w = int(min(width, round(np.sqrt(area * ratio))))
        h = int(min(height, round(np.sqrt(area / ratio))))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        image = image.rotate(rng.uniform(-self.DEGREES, self.DEGREES), resample=Image.Resampling.BILINEAR)
        image = image.crop((left, top, left + w, top + h))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return self.prepare(image)


class TextTrunk:
    """What a :class:`~skmm.TextEncoder`'s transformer makes of each text before layer ``start``.

    Per text, its hidden states there (tokens x width, padding removed); with
    ``pooled`` (and ``start`` = the number of layers), the model's own
    sentence embedding.
    """

    def __init__(self, start, n_layers, pooled=False):
        self.start, self.n_layers, self.pooled = start, n_layers, pooled
        self.spec = {"kind": "text-trunk", "start": int(start), "pooled": bool(pooled)}

    def pipeline(self, encoder, bundle):
        from .._inputs import to_text
        from .text import _Tokenize

        max_length = encoder.max_seq_length or bundle.max_seq_length
        return to_text, _Tokenize(bundle.tokenizer, max_length), _RunTextTrunk(bundle.module, self.start, self.pooled)


class _RunTextTrunk:
    def __init__(self, module, start, pooled):
        self.module, self.start, self.pooled = module, start, pooled

    def __call__(self, features):
        if self.pooled:
            return self.module(features)["sentence_embedding"].float()
        states = self.module[0].auto_model(**features, output_hidden_states=True).hidden_states[self.start]
        lengths = features["attention_mask"].sum(dim=1).tolist()
        return [state[:int(length)].float() for state, length in zip(states, lengths)]
