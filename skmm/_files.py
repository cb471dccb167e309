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


def _folder_of(path):
    return path.parent if str(path.parent) else Path(".")


def _about_destination(exc, path, temporary=None):
    """``exc`` as the user should read it: about ``path``, never the temporary file beside it.

    An error about another file (one that ``write`` reads, say) is returned as it is.
    """
    if exc.errno is not None and exc.strerror and (temporary is None or exc.filename == temporary):
        return OSError(exc.errno, exc.strerror, str(path))  # OSError picks the subclass from errno
    if temporary is not None and temporary in str(exc):
        return OSError(str(exc).replace(temporary, str(path)))
    return exc


def _temporary_file_for(path):
    try:
        fd, temporary = tempfile.mkstemp(dir=_folder_of(path), prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _about_destination(exc, path) from None
    os.close(fd)
    return temporary


def check_writable(path):
    """Raise, before any work, the ``OSError`` that :func:`atomic_write` would meet writing ``path``.

    The same temporary file is created in ``path``'s folder and removed:
    permission bits alone do not tell (root passes every permission check,
    yet cannot create a file in ``/proc`` or on a read-only mount).

    Parameters
    ----------
    path : str or pathlib.Path
        The file to be written. Neither it nor its folder is changed.

    Raises
    ------
    OSError
        Naming ``path``, not the temporary file.
    """
    Path(_temporary_file_for(Path(path))).unlink()


def atomic_write(path, write):
    """Call ``write(temporary_path)``, then rename the file onto ``path`` (atomic on POSIX and Windows).

    The file gets the permissions a plain ``open(path, "w")`` would give
    (``0o666`` less the umask), not the owner-only ones of a temporary file.
    An ``OSError`` names ``path``, not the temporary file.
    """
    path = Path(path)
    temporary = _temporary_file_for(path)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        renamed = _about_destination(exc, path, temporary)
        if renamed is exc:
            raise
        raise renamed from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path, data):
    def write(tmp):
        with open(tmp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write)
