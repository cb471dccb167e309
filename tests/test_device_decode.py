"""ImageEncoder(decode="device"): JPEGs decoded and resized on the model's device.

On the CPU, torchvision decodes with libjpeg-turbo where nvJPEG would on CUDA;
the code around the decoder (reading, orientation, crop box, resize, mixed
batches, fallbacks, failures) is the same, so it is tested here.
SKMM_TEST_DEVICE=cuda runs these tests on a GPU, through nvJPEG.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from skmm import EncodingError, ImageEncoder
from skmm.encoders._device_decode import DecodeOnDevice, Encoded, MixedBatch, ReadForDevice
from skmm.encoders._image_steps import PrepareImage

from .conftest import DEVICE
from .conftest import TINY_IMAGE as _TINY

TINY_IMAGE = {key: value for key, value in _TINY.items() if key != "decode"}  # these tests choose it


def _photo(width, height, seed=0):
    """A smooth colour image (JPEG-friendly, so both decoders agree closely), with an asymmetric mark."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    channels = [np.sin(x / (width / rng.uniform(1, 3)) + rng.uniform(0, 6)) +
                np.cos(y / (height / rng.uniform(1, 3)) + rng.uniform(0, 6)) for _ in range(3)]
    pixels = ((np.stack(channels, -1) + 2) * 60).astype(np.uint8)
    pixels[: height // 4, : width // 4] = (250, 20, 20)  # top-left red corner: shows any flip or rotation
    return pixels


def _jpeg(pixels, orientation=None, mode="RGB"):
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    kwargs = {"quality": 95}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def config():
    encoder = ImageEncoder(**TINY_IMAGE).fit([np.zeros((8, 8, 3), np.uint8)])
    return encoder.data_config(encoder.load_backbone())


def _both_paths(items, config, crop=True):
    loader = PrepareImage(config, crop)
    by_loader = torch.stack([loader(item) for item in items]).float()
    read = ReadForDevice(loader)
    by_device, failures = DecodeOnDevice(config, crop, DEVICE, loader)(MixedBatch(read(item) for item in items))
    assert failures == {}
    return by_loader, by_device.float().cpu()


@pytest.mark.parametrize("crop", [True, False])
def test_device_decoding_matches_the_loader_path(config, crop, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(_photo(120, 90, seed=1)))
    items = [str(path), _jpeg(_photo(64, 100, seed=2)), _jpeg(_photo(50, 50, seed=3))]
    by_loader, by_device = _both_paths(items, config, crop)
    assert by_device.shape == by_loader.shape == (3, config.input_size, config.input_size, 3)
    assert (by_device - by_loader).abs().mean() < 4.0  # of 255: two resamplers, same geometry


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(config, orientation):
    item = _jpeg(_photo(80, 48, seed=orientation), orientation=orientation)
    by_loader, by_device = _both_paths([item], config, crop=False)
    assert (by_device - by_loader).abs().mean() < 4.0, orientation


def test_mixed_batches_fallbacks_and_failures(config):
    pixels = _photo(40, 40)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, "PNG")
    whole = _jpeg(_photo(64, 64))
    truncated = whole[: len(whole) * 2 // 3]  # the header is intact: only a decoder finds out
    items = [_jpeg(pixels), png.getvalue(), pixels, _jpeg(pixels, mode="CMYK"), _jpeg(pixels, mode="L")]
    loader = PrepareImage(config, True)
    read = ReadForDevice(loader)
    # Cut short: refused when read, as the loader path refuses it (nvJPEG would decode it, partly grey).
    for path in (read, loader):
        with pytest.raises(OSError, match="truncated"):
            path(truncated)
    samples = [read(item) for item in items]
    # Only YCbCr and grayscale JPEGs wait for the device; CMYK is converted by Pillow in the loader.
    assert [isinstance(sample, Encoded) for sample in samples] == [True, False, False, False, True]
    batch = MixedBatch.concat([MixedBatch(samples[:2]), MixedBatch(samples[2:])])
    assert len(batch) == len(items)
    out, failures = DecodeOnDevice(config, True, DEVICE, loader)(batch)
    assert failures == {}
    for row in range(len(items)):  # the JPEG, the PNG, the array, CMYK, grayscale
        expected = loader(items[row]).float()
        assert (out[row].float().cpu() - expected).abs().mean() < 6.0, row


def test_a_jpeg_the_device_decoder_rejects_goes_to_pillow_and_fails_alone(config):
    items = [_jpeg(_photo(48, 40, seed=1)), _jpeg(_photo(40, 48, seed=2))]
    loader = PrepareImage(config, True)
    decoder = DecodeOnDevice(config, True, DEVICE, loader)

    def device_decoder(data):  # as nvJPEG rejects some JPEGs (arithmetic coding, 12-bit samples)
        raise RuntimeError("unsupported JPEG")

    def pillow(data):
        if data == items[1]:
            raise OSError("broken data stream")
        return loader(data)

    decoder._decode, decoder.prepare_pixels = device_decoder, pillow
    out, failures = decoder(MixedBatch(ReadForDevice(loader)(item) for item in items))
    assert list(failures) == [1] and "broken data stream" in failures[1]
    assert torch.equal(out[0].cpu(), loader(items[0]))  # Pillow's picture, as the loader path makes it
    assert not out[1].any()  # a failed row is zeros


def test_encoder_with_device_decoding(tmp_path):
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(_jpeg(_photo(70, 50, seed=i)))
    items = [str(p) for p in paths] + [b"\xff\xd8\xff not really a jpeg"]
    device = ImageEncoder(**TINY_IMAGE, decode="device", batch_size=2, cache=None, on_error="zero").fit(items)
    loader = ImageEncoder(**TINY_IMAGE, decode="loader", batch_size=2, cache=None, on_error="zero").fit(items)
    with pytest.warns(UserWarning, match="row 5"):
        by_device, failed_device = device.encode(items)
    with pytest.warns(UserWarning, match="row 5"):
        by_loader, failed_loader = loader.encode(items)
    assert failed_device.tolist() == failed_loader.tolist() == [False] * 5 + [True]
    cosine = (by_device[:5] * by_loader[:5]).sum(1) / (
        np.linalg.norm(by_device[:5], axis=1) * np.linalg.norm(by_loader[:5], axis=1))
    assert cosine.min() > 0.98, cosine
    # The two paths resample differently: their embeddings are cached apart.
    assert device.fingerprint_ != loader.fingerprint_
    auto = ImageEncoder(**TINY_IMAGE, cache=None).fit(items)
    expected = "device" if torch.device(DEVICE).type == "cuda" else "loader"
    assert auto._resolved_decode() == expected
    assert auto.fingerprint_ == (device if expected == "device" else loader).fingerprint_
    with pytest.raises(EncodingError, match="row 5"):
        ImageEncoder(**TINY_IMAGE, decode="device", cache=None).fit(items).transform(items)
    with pytest.raises(ValueError, match="decode.*must be a str among"):
        ImageEncoder(**TINY_IMAGE, decode="gpu").fit(items)


def test_device_decoding_joins_worker_chunks_into_full_batches(tmp_path, monkeypatch):
    from skmm.encoders import _device_decode

    paths = []
    for i in range(12):
        paths.append(str(tmp_path / f"{i}.jpg"))
        (tmp_path / f"{i}.jpg").write_bytes(_jpeg(_photo(40, 40, seed=i)))
    sizes = []
    original = _device_decode.DecodeOnDevice.__call__

    def recording(self, batch):
        sizes.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(_device_decode.DecodeOnDevice, "__call__", recording)
    encoder = ImageEncoder(**TINY_IMAGE, decode="device", batch_size=64, num_workers=2, cache=None).fit(paths)
    with_workers = encoder.transform(paths)
    # Workers hand over chunks of at most 32 items; 12 items still make one model batch.
    assert sizes == [12]
    in_process = ImageEncoder(**TINY_IMAGE, decode="device", num_workers=0, cache=None).fit(paths).transform(paths)
    np.testing.assert_allclose(with_workers, in_process, rtol=1e-5, atol=1e-5)


def test_large_batches_are_decoded_in_groups_of_bounded_pixels(config, monkeypatch):
    from skmm.encoders import _device_decode

    items = [_jpeg(_photo(60, 40, seed=i)) for i in range(5)]
    loader = PrepareImage(config, True)
    read = ReadForDevice(loader)
    batch = MixedBatch([read(items[0]), loader(items[1])] + [read(item) for item in items[2:]])
    assert [sample.pixels for sample in batch.samples if hasattr(sample, "pixels")] == [2400] * 4
    whole, _ = DecodeOnDevice(config, True, DEVICE, loader)(batch)
    monkeypatch.setattr(_device_decode, "MAX_DECODE_PIXELS", 5000)
    assert list(_device_decode._pixel_bounded_groups(batch.samples)) == [[0, 2], [3, 4]]
    calls = []
    original = DecodeOnDevice._decode

    def counting(self, data):
        calls.append(len(data))
        return original(self, data)

    monkeypatch.setattr(DecodeOnDevice, "_decode", counting)
    grouped, failures = DecodeOnDevice(config, True, DEVICE, loader)(batch)
    assert calls == [2, 2] and failures == {}
    assert torch.equal(grouped, whole)
    monkeypatch.setattr(_device_decode, "MAX_DECODE_PIXELS", 100)  # each image alone, still decoded
    assert list(_device_decode._pixel_bounded_groups(batch.samples)) == [[0], [2], [3], [4]]
