"""Synthetic multimodal datasets, in the spirit of ``sklearn.datasets.make_*``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from sklearn.utils import check_random_state

# Each class has a colour (shown in the image) and words (used in the text).
_CLASS_COLOURS = [(220, 40, 40), (40, 170, 60), (40, 80, 220), (230, 200, 30), (160, 60, 190), (30, 190, 200),
                  (240, 130, 20), (120, 80, 40)]
_CLASS_WORDS = [
    ["fire", "flames", "burning", "blaze"],
    ["forest", "grass", "garden", "leaves"],
    ["ocean", "sea", "waves", "lake"],
    ["sunshine", "beach", "sand", "summer"],
    ["violets", "lavender", "orchid", "plum"],
    ["glacier", "ice", "frost", "snow"],
    ["pumpkin", "autumn", "harvest", "orange"],
    ["coffee", "chocolate", "wood", "bread"],
]
_NEUTRAL_WORDS = ["today", "photo", "friends", "weekend", "look", "posted", "morning", "again", "great", "view",
                  "city", "walk", "new", "picture", "time"]
_TEMPLATES = ["{a} {w} {b} {c}", "{a} {b} {w} {c} {d}", "{w} {a} {b}", "{a} {b} {c} {w}"]
_SHAPES = ("ellipse", "rectangle", "triangle")
# What each class looks like and reads like, for labelling plots of the generated data.
CLASS_NAMES = ["red / fire", "green / forest", "blue / ocean", "yellow / sunshine", "purple / violets",
               "cyan / glacier", "orange / pumpkin", "brown / coffee"]


def make_multimodal_classification(
    n_samples=200,
    *,
    n_classes=3,
    image_size=64,
    image_informative=0.4,
    text_informative=0.4,
    noise=0.15,
    image_format="array",
    image_dir=None,
    random_state=None,
):
    """Generate an image + text classification problem where each modality carries part of the label.

    Each sample's class shows in its image (the colour of a shape on a noisy
    background) and in its text (a word of the class's vocabulary among
    neutral words) -- but not always in both. With probability
    ``image_informative`` only the image shows the class (the text is
    neutral), with probability ``text_informative`` only the text does, and
    otherwise both do. A model that fuses the two modalities can therefore
    beat either one alone by a clear margin.

    Parameters
    ----------
    n_samples : int, default=200
        Number of rows.
    n_classes : int, default=3
        Number of classes, 2 to 8.
    image_size : int, default=64
        Side of the square RGB images.
    image_informative, text_informative : float, default=0.4
        Share of rows in which *only* that modality carries the class. Their
        sum must be at most 1; the rest carry it in both.
    noise : float, default=0.15
        Standard deviation of the pixel noise (fraction of the 0-255 range).
    image_format : {"array", "pil", "png", "path"}, default="array"
        How images are returned: HWC uint8 arrays, PIL images, PNG bytes, or
        JPEG file paths written to ``image_dir`` (required for ``"path"``).
    image_dir : str or Path, optional
        Where to write the JPEG files when ``image_format="path"``.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output.

    Returns
    -------
    X : pandas.DataFrame of shape (n_samples, 2)
        Columns ``"image"`` and ``"text"``.
    y : ndarray of shape (n_samples,)
        Integer class labels (``CLASS_NAMES[k]`` says what class ``k`` looks
        and reads like).

    Examples
    --------
    >>> from skmm.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=10, random_state=0)
    >>> X.columns.tolist(), X.shape, y.shape
    (['image', 'text'], (10, 2), (10,))
    """
    if not 2 <= n_classes <= len(_CLASS_COLOURS):
        raise ValueError(f"n_classes must be between 2 and {len(_CLASS_COLOURS)}, got {n_classes}")
    if image_informative < 0 or text_informative < 0 or image_informative + text_informative > 1:
        raise ValueError("image_informative and text_informative must be >= 0 and sum to at most 1")
    if image_format not in ("array", "pil", "png", "path"):
        raise ValueError(f"image_format must be 'array', 'pil', 'png' or 'path', got {image_format!r}")
    if image_format == "path" and image_dir is None:
        raise ValueError("image_format='path' needs image_dir")
    rng = check_random_state(random_state)
    y = rng.randint(n_classes, size=n_samples)
    which = rng.choice(3, size=n_samples, p=[image_informative, text_informative,
                                             1 - image_informative - text_informative])
    image_shows = which != 1
    text_shows = which != 0
    if image_dir is not None:
        os.makedirs(image_dir, exist_ok=True)
    images, texts = [], []
    for i in range(n_samples):
        pixels = _draw_image(rng, y[i] if image_shows[i] else None, image_size, noise)
        images.append(_encode_image(pixels, image_format, image_dir, i))
        texts.append(_write_text(rng, y[i] if text_shows[i] else None))
    return pd.DataFrame({"image": images, "text": texts}), y


def _draw_image(rng, label, size, noise):
    background = rng.randint(60, 200, size=3)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(image)
    if label is None:  # uninformative: a greyish colour that no class uses
        grey = int(rng.randint(90, 170))
        colour = (grey, grey + int(rng.randint(-10, 10)), grey)
    else:
        colour = tuple(int(np.clip(c + rng.randint(-20, 21), 0, 255)) for c in _CLASS_COLOURS[label])
    lo, hi = int(size * rng.uniform(0.1, 0.3)), int(size * rng.uniform(0.7, 0.9))
    box = [lo, int(size * rng.uniform(0.1, 0.3)), hi, int(size * rng.uniform(0.7, 0.9))]
    shape = _SHAPES[rng.randint(len(_SHAPES))]
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=colour)
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0, noise * 255, size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _encode_image(pixels, image_format, image_dir, i):
    if image_format == "array":
        return pixels
    image = Image.fromarray(pixels)
    if image_format == "pil":
        return image
    if image_format == "png":
        import io

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    path = Path(image_dir) / f"{i:06d}.jpg"
    image.save(path, format="JPEG", quality=90)
    return str(path)


def _write_text(rng, label):
    neutral = rng.choice(_NEUTRAL_WORDS, size=4, replace=False)
    word = rng.choice(_CLASS_WORDS[label]) if label is not None else rng.choice(_NEUTRAL_WORDS)
    template = _TEMPLATES[rng.randint(len(_TEMPLATES))]
    return template.format(w=word, a=neutral[0], b=neutral[1], c=neutral[2], d=neutral[3])


def decode_text_bytes(data, encodings=("utf-8", "gb18030")):
    """Decode text bytes of unknown encoding: the first of ``encodings`` that fits, else cp1252 with replacement.

    Real scraped text mixes encodings: in MVSA a quarter of the tweets were
    transcoded to GBK (``b"\\xa1\\xad"`` is its "..."), which GB18030 reads
    back exactly. Nothing here raises.

    Examples
    --------
    >>> from skmm.datasets import decode_text_bytes
    >>> decode_text_bytes(b"caf\\xc3\\xa9"), decode_text_bytes(b"wait\\xa1\\xad")
    ('café', 'wait…')
    """
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("cp1252", errors="replace")


def load_mvsa(data_home, *, split="train"):
    """Load the MVSA image + text sentiment data from a local folder.

    Parameters
    ----------
    data_home : str or Path
        The folder holding ``train.txt``, ``test_without_label.txt`` and
        ``data/<guid>.jpg|txt`` (nothing is downloaded).
    split : {"train", "test"}, default="train"
        ``"test"`` rows have no label (``y`` is None).

    Returns
    -------
    X : pandas.DataFrame
        Columns ``"image"`` (file path) and ``"text"`` (decoded with
        :func:`decode_text_bytes`), indexed by the post's guid.
    y : ndarray of str or None
        ``"positive"``, ``"neutral"`` or ``"negative"``.
    """
    root = Path(data_home)
    table = pd.read_csv(root / ("train.txt" if split == "train" else "test_without_label.txt"))
    guids = table["guid"].astype(str)
    images = [str(root / "data" / f"{guid}.jpg") for guid in guids]
    texts = [decode_text_bytes((root / "data" / f"{guid}.txt").read_bytes()).strip() for guid in guids]
    X = pd.DataFrame({"image": images, "text": texts}, index=pd.Index(guids, name="guid"))
    y = table["tag"].to_numpy(dtype=object) if split == "train" else None
    return X, y
