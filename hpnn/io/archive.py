"""A single-file archive: a JSON document plus named arrays, written atomically.

Layout: a ZIP file (stored, not compressed) with ``manifest.json`` (format
version, the JSON document, and per array its dtype, shape and SHA-256) and one
``.npy`` member per array. Writes go to a temporary file in the target's
directory, are fsync'ed, then renamed over the target, so a crash at any moment
leaves either the old file or the new one, never a partial file. Reads check
every checksum before returning anything, so a truncated or corrupted file
raises :class:`ArchiveError` instead of yielding half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "hpnn-archive"
VERSION = 1


class ArchiveError(ValueError):
    """The file is not a readable hpnn archive (truncated, corrupted, or another format)."""


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file object whose content replaces ``path`` only on success."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # (np.asarray keeps a 0-d array 0-d; np.ascontiguousarray would make it 1-d)
    np.lib.format.write_array(buf, np.asarray(a, order="C"), allow_pickle=False)
    return buf.getvalue()


def write_archive(path, document: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``document`` (JSON-able) and ``arrays`` to ``path`` atomically."""
    members, entries = {}, {}
    for name, a in arrays.items():
        data = _npy_bytes(np.asarray(a))
        members[f"arrays/{name}.npy"] = data
        entries[name] = {
            "dtype": str(np.asarray(a).dtype),
            "shape": list(np.shape(a)),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    manifest = {"format": FORMAT, "version": VERSION, "document": document, "arrays": entries}
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        for member, data in members.items():
            z.writestr(member, data)


def read_archive(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Return ``(document, arrays)`` from ``path``; every checksum is verified first."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(z.read("manifest.json"))
            if manifest.get("format") != FORMAT:
                raise ArchiveError(
                    f"{path!r} is not an hpnn archive (format {manifest.get('format')!r})."
                )
            if manifest.get("version", 0) > VERSION:
                raise ArchiveError(
                    f"{path!r} was written by a newer hpnn (archive version "
                    f"{manifest['version']}); upgrade hpnn to read it."
                )
            arrays = {}
            for name, entry in manifest["arrays"].items():
                data = z.read(f"arrays/{name}.npy")
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise ArchiveError(
                        f"{path!r}: array {name!r} fails its checksum: the file is corrupted."
                    )
                arrays[name] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except ArchiveError:
        raise
    except (
        zipfile.BadZipFile,
        KeyError,
        json.JSONDecodeError,
        EOFError,
        ValueError,
        zipfile.LargeZipFile,
        OSError,
    ) as e:
        raise ArchiveError(
            f"{path!r} is truncated, corrupted, or not an hpnn file ({type(e).__name__}: {e})."
        ) from None
    return manifest["document"], arrays
