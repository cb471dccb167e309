"""ImageEncoder's steps: one item decoded and resized (in the loader's workers), one batch embedded."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from .._inputs import open_image
from ._image_models import crop_box

_ROTATION_DEGREES = 15.0
_PIL_RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                   "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
                   "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


class PrepareImage:
    """Decode one item and resize / crop it to a uint8 HWC tensor (runs in DataLoader workers).

    Normalisation happens later on the device: uint8 batches are 4x smaller to
    pin and copy than float ones. HWC, as Pillow lays pixels out: a stack of
    them is already an NCHW batch in channels-last memory, what the model
    runs on, so no image is transposed on the way.
    """

    def __init__(self, config, crop):
        self.config = config
        self.crop = crop

    def __call__(self, item):
        config = self.config
        image = open_image(item, draft_size=config.resize_size)
        size = config.input_size
        # Only the crop region is resampled: the geometry of "resize, then center-crop" without
        # resampling (often upscaling) pixels the crop throws away. About half the time of the two steps.
        box = crop_box(*image.size, config, self.crop)
        image = image.resize((size, size), _PIL_RESAMPLING[config.interpolation], box=box)
        return torch.from_numpy(np.asarray(image).copy())  # writable copy: torch warns on read-only


def normalized_batch(batch, bundle):
    """A batch of uint8 HWC images, normalised on its device as ``bundle``'s model expects, NCHW channels-last."""
    # (N, H, W, C) uint8 -> an NCHW view in channels-last memory; float() and the arithmetic keep it.
    x = (batch.permute(0, 3, 1, 2).float().div_(255.0) - bundle.mean) / bundle.std
    return x.contiguous(memory_format=torch.channels_last)  # a no-op, unless a collate changed the layout


class ForwardImages:
    """Normalise a batch of uint8 images on its device and embed it, averaged over the TTA views."""

    def __init__(self, bundle, views, decode=None):
        self.bundle = bundle
        self.views = views
        self.decode = decode  # DecodeOnDevice with decode="device": the batch arrives encoded

    def __call__(self, batch):
        if self.decode is not None:
            pixels, failures = self.decode(batch)
            return self._embed(pixels), failures
        return self._embed(batch)

    def _embed(self, batch):
        bundle = self.bundle
        x = normalized_batch(batch, bundle)
        total = None
        for view in self.views:
            if view == "hflip":
                v = torch.flip(x, dims=[3])
            elif view == "rotate+":
                v = F.rotate(x, _ROTATION_DEGREES, interpolation=InterpolationMode.BILINEAR)
            elif view == "rotate-":
                v = F.rotate(x, -_ROTATION_DEGREES, interpolation=InterpolationMode.BILINEAR)
            else:
                v = x
            features = bundle.inference_module(v).float()
            total = features if total is None else total + features
        return total / len(self.views)
