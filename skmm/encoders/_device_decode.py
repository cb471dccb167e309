"""JPEG decoding on the model's device (``ImageEncoder(decode="device")``).

On a GPU the CPU cores decoding JPEGs, not the model, set the pace (see
docs/performance.md for the measured gap). With ``decode="device"`` the DataLoader
only reads each file's bytes and its EXIF orientation; the batch is decoded
by ``torchvision.io.decode_jpeg`` on the model's device (nvJPEG on CUDA),
then oriented, cropped and resized there. Items that are not JPEG files or
bytes (PNG, arrays, PIL images) are still decoded by the loader, and a JPEG
the device decoder rejects is decoded by Pillow instead, so every item the
loader path accepts is accepted here too. JPEGs whose reading decoders
disagree on (not YCbCr or grayscale, such as CMYK; or cut short, which nvJPEG
may decode into a partly grey picture where libjpeg and Pillow fail) go to
the loader's Pillow path before any device sees them: the same rows fail, and
the same pictures come out, on a CPU and on a GPU.
"""

from __future__ import annotations

import io
import os
import warnings

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from .._batching import failure_message
from ._image_models import crop_box

_JPEG_MAGIC = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
# Colour modes every device decoder converts to RGB alike (CMYK and YCCK: left to Pillow).
_DEVICE_MODES = ("RGB", "L")
# nvJPEG cannot decode at reduced scale (Pillow's draft mode can): a batch of large photos is decoded in
# groups of at most this many pixels (768 MiB of RGB), each resized before the next group is decoded.
MAX_DECODE_PIXELS = 2**28
_EXIF_ORIENTATION = 0x0112
# Tensors resize with nearest, bilinear or bicubic; Pillow's other filters (lanczos, box, hamming) become bicubic.
_TENSOR_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "nearest": InterpolationMode.NEAREST}


def device_decode_available():
    """Whether this torchvision still has ``io.decode_jpeg`` (deprecated since 0.29 for TorchCodec)."""
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return True


class Encoded:
    """A JPEG's bytes as a 1-D uint8 tensor, with its EXIF orientation (1: none) and pixel count."""

    def __init__(self, data, orientation, pixels):
        self.data = data
        self.orientation = orientation
        self.pixels = pixels


class MixedBatch:
    """A batch of :class:`Encoded` JPEGs and ready HWC uint8 pixel tensors, in row order.

    Not a tensor, so ``to_device`` and ``pin_memory`` leave it as it is (the
    decoder wants the bytes on the CPU); ``concat`` lets the batching loop join
    chunks from the DataLoader workers into one model batch.
    """

    def __init__(self, samples):
        self.samples = list(samples)

    def __len__(self):
        return len(self.samples)

    @classmethod
    def concat(cls, batches):
        return cls(sample for batch in batches for sample in batch.samples)


def _jpeg_bytes(item):
    if isinstance(item, (str, os.PathLike)):
        with open(item, "rb") as handle:
            data = handle.read()
    elif isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
    else:
        return None
    return data if data.startswith(_JPEG_MAGIC) else None


class ReadForDevice:
    """Loader side: read a JPEG's bytes and orientation; prepare anything else as the loader path does."""

    def __init__(self, prepare_pixels):
        self.prepare_pixels = prepare_pixels

    def __call__(self, item):
        data = _jpeg_bytes(item)
        if data is None:
            return self.prepare_pixels(item)
        with Image.open(io.BytesIO(data)) as header:  # reads the header only; a bad one raises here, per row
            orientation = int(header.getexif().get(_EXIF_ORIENTATION, 1))
            pixels = header.size[0] * header.size[1]
            mode = header.mode
        if mode not in _DEVICE_MODES or not data.rstrip(b"\x00\r\n\t ").endswith(_JPEG_END):
            return self.prepare_pixels(data)  # decoded (or refused, per row) as the loader path does
        return Encoded(torch.frombuffer(bytearray(data), dtype=torch.uint8), orientation, pixels)


def _pixel_bounded_groups(samples):
    """The rows of the encoded samples, in groups of at most ``MAX_DECODE_PIXELS`` (a larger image alone)."""
    group, total = [], 0
    for row, sample in enumerate(samples):
        if not isinstance(sample, Encoded):
            continue
        if group and total + sample.pixels > MAX_DECODE_PIXELS:
            yield group
            group, total = [], 0
        group.append(row)
        total += sample.pixels
    if group:
        yield group


def apply_orientation(image, orientation):
    """Apply an EXIF orientation to a CHW tensor, as ``PIL.ImageOps.exif_transpose`` does."""
    height_width = (-2, -1)
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(height_width)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(image, -1, height_width)
    if orientation == 7:
        return image.transpose(-2, -1).flip(height_width)
    if orientation == 8:
        return torch.rot90(image, 1, height_width)
    return image


class DecodeOnDevice:
    """Model side: decode a :class:`MixedBatch` on ``device`` into an (N, H, W, C) uint8 batch.

    Returns ``(batch, failures)``: ``failures`` maps rows that no decoder
    could read to a message, and their rows in ``batch`` are zeros.
    """

    def __init__(self, config, crop, device, prepare_pixels):
        self.config = config
        self.crop = crop
        self.device = torch.device(device)
        self.prepare_pixels = prepare_pixels
        self.interpolation = _TENSOR_INTERPOLATION.get(config.interpolation, InterpolationMode.BICUBIC)

    def _decode(self, data):
        from torchvision.io import ImageReadMode, decode_jpeg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)

    def _decode_group(self, samples, rows):
        """``{row: CHW uint8 image on the device}`` for the rows the device decoder reads."""
        try:  # one batched call: nvJPEG decodes the whole group at once
            return dict(zip(rows, self._decode([samples[row].data for row in rows])))
        except Exception:  # some image the device decoder rejects: find it, one by one
            decoded = {}
            for row in rows:
                try:
                    decoded[row] = self._decode(samples[row].data)
                except Exception:  # left to Pillow
                    pass
            return decoded

    def _resize(self, image):
        """CHW uint8 -> HWC uint8 of the model's input size, same box as the loader path."""
        size = self.config.input_size
        left, top, right, bottom = crop_box(image.shape[-1], image.shape[-2], self.config, self.crop)
        image = F.resized_crop(image, round(top), round(left), max(1, round(bottom - top)),
                               max(1, round(right - left)), [size, size], interpolation=self.interpolation,
                               antialias=True)
        return image.permute(1, 2, 0)

    def __call__(self, batch):
        samples = batch.samples
        size = self.config.input_size
        out = torch.zeros((len(samples), size, size, 3), dtype=torch.uint8, device=self.device)
        failures = {}
        done = set()
        for group in _pixel_bounded_groups(samples):
            for row, image in self._decode_group(samples, group).items():
                out[row] = self._resize(apply_orientation(image, samples[row].orientation))
                done.add(row)
        for row, sample in enumerate(samples):
            if row in done:
                continue
            if isinstance(sample, Encoded):  # e.g. CMYK or an unusual JPEG: Pillow reads it
                try:
                    out[row] = self.prepare_pixels(bytes(sample.data.numpy())).to(self.device)
                except Exception as exc:
                    failures[row] = failure_message(exc)
            else:
                out[row] = sample.to(self.device, non_blocking=True)
        return out, failures
