"""Writing files so that no reader ever sees half of one: a temporary file in the same folder, renamed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: setting and restoring the umask on every write would open a window in which another
# thread's mkdir makes a world-writable folder.
_UMASK = _read_umask()


def atomic_write(path, write):
    """Call ``write(temporary_path)``, then rename the file onto ``path`` (atomic on POSIX and Windows).

    The file gets the permissions a plain ``open(path, "w")`` would give
    (``0o666`` less the umask), not the owner-only ones of a temporary file.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path, data):
    def write(tmp):
        with open(tmp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write)
