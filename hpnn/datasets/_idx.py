"""Shared machinery for the MNIST-style datasets: IDX parsing, look-up, download.

The four files of an MNIST-style dataset are looked for, in order, in:

1. the directory passed as ``path`` (an error if it lacks any file);
2. ``$HPNN_DATA/<name>``;
3. the user cache ``$XDG_CACHE_HOME/hpnn/datasets/<name>``
   (``~/.cache/hpnn/datasets/<name>`` by default);
4. the system directory ``/usr/share/datasets/<name>`` (Debian's layout);

and are otherwise downloaded into the user cache, each file checked against a
pinned SHA-256 before it is moved into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["DatasetSpec", "DatasetUnavailableError", "cache_dir", "load", "read_idx"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILENAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
_SPLITS = ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS))

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT = 30.0
_CHUNK = 1 << 20
# A real MNIST-style file is ~47 MB; a header claiming over 1 GiB is corrupt,
# and refusing it avoids allocating whatever size a bad header announces.
_MAX_PAYLOAD = 1 << 30

_log = logging.getLogger(__name__)


class DatasetUnavailableError(RuntimeError):
    """The dataset is not on disk and could not be downloaded."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where an MNIST-style dataset lives and how to check it.

    Attributes:
        name: Directory name under the data roots, e.g. ``"fashion-mnist"``.
        title: Human-readable name used in messages.
        mirrors: Base URLs tried in order; a filename is appended to each.
        sha256: Expected SHA-256 hex digest of each downloaded ``.gz`` file.
        apt_package: Debian package that installs the files, if any.
    """

    name: str
    title: str
    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]
    apt_package: str | None = None


def read_idx(path: str | os.PathLike[str], magic: int) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzip-compressed if its name ends in ``.gz``.

    Args:
        path: The file to read.
        magic: Expected magic number: 2051 for images, 2049 for labels.

    Returns:
        A writable ``uint8`` array with the dimensions stored in the header.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a well-formed IDX file with that magic
            number (bad gzip stream, wrong magic, truncated or trailing data).
    """
    path = Path(path)
    with open(path, "rb") as raw:
        if path.name.endswith(".gz"):
            wrapper = gzip.GzipFile(fileobj=raw, mode="rb")
        else:
            wrapper = contextlib.nullcontext(raw)
        with wrapper as stream:
            try:
                return _parse_idx(stream, path, magic)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise ValueError(
                    f"Malformed IDX file {path}: corrupt or truncated gzip data ({exc})"
                ) from exc


def _parse_idx(stream, path: Path, magic: int) -> np.ndarray:
    head = stream.read(4)
    if len(head) < 4:
        raise ValueError(
            f"Malformed IDX file {path}: truncated header "
            f"({len(head)} bytes, expected a 4-byte magic number)"
        )
    found = int.from_bytes(head, "big")
    if found != magic:
        kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "IDX")
        raise ValueError(
            f"Malformed IDX file {path}: magic number {found} (0x{found:08x}), "
            f"expected {magic} (0x{magic:08x}) for an unsigned-byte {kind} file"
        )
    ndim = magic & 0xFF
    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise ValueError(
            f"Malformed IDX file {path}: truncated header "
            f"({len(dims_raw)} of {4 * ndim} bytes of dimensions)"
        )
    shape = tuple(int.from_bytes(dims_raw[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    size = int(np.prod(shape, dtype=np.int64))
    if size > _MAX_PAYLOAD:
        raise ValueError(f"Malformed IDX file {path}: implausible dimensions {shape}")
    out = np.empty(size, dtype=np.uint8)
    view = memoryview(out)
    filled = 0
    while filled < size:
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    if filled < size:
        raise ValueError(
            f"Malformed IDX file {path}: truncated data, header declares shape "
            f"{shape} ({size} bytes) but only {filled} bytes follow"
        )
    if stream.read(1):
        raise ValueError(
            f"Malformed IDX file {path}: unexpected data after the {size} bytes "
            f"declared by the header (shape {shape})"
        )
    return out.reshape(shape)


def load(spec: DatasetSpec, path: str | os.PathLike[str] | None = None):
    """Locate (downloading if needed) and read an MNIST-style dataset.

    Args:
        spec: The dataset to load.
        path: Directory holding the four files. When given, no other place is
            searched.

    Returns:
        ``(x_train, y_train), (x_test, y_test)`` as ``uint8`` arrays.

    Raises:
        FileNotFoundError: If ``path`` is given but lacks one of the files.
        DatasetUnavailableError: If the files are nowhere on disk and the
            download fails.
        ValueError: If a file is malformed.
    """
    files = _resolve(spec, path)
    splits = []
    for images_name, labels_name in _SPLITS:
        images = read_idx(files[images_name], IMAGES_MAGIC)
        labels = read_idx(files[labels_name], LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{files[images_name]} holds {images.shape[0]} images but "
                f"{files[labels_name]} holds {labels.shape[0]} labels"
            )
        splits.append((images, labels))
    return tuple(splits)


def cache_dir(spec: DatasetSpec) -> Path:
    """Return the user cache directory for ``spec`` (it may not exist yet)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "hpnn" / "datasets" / spec.name


def _find_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Map each canonical filename to the file present, preferring ``.gz``."""
    found, missing = {}, []
    for name in FILENAMES:
        for candidate in (directory / name, directory / name[: -len(".gz")]):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _resolve(spec: DatasetSpec, path) -> dict[str, Path]:
    """Return the four files of ``spec`` following the documented look-up order."""
    if path is not None:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise FileNotFoundError(f"{spec.title}: path={str(path)!r} is not a directory")
        found, missing = _find_files(directory)
        if missing:
            raise FileNotFoundError(
                f"{spec.title}: directory {directory} lacks {', '.join(missing)} "
                "(the uncompressed files without .gz are accepted too)"
            )
        return found

    searched = []
    env = os.environ.get("HPNN_DATA")
    candidates = [(Path(env).expanduser() / spec.name, "$HPNN_DATA")] if env else []
    cache = cache_dir(spec)
    candidates += [(cache, "user cache"), (SYSTEM_DATA_DIR / spec.name, "system")]
    for directory, label in candidates:
        found, missing = _find_files(directory)
        if not missing:
            return found
        state = "not found" if not found else f"lacks {', '.join(missing)}"
        searched.append(f"{directory} ({label}): {state}")

    _download_missing(spec, cache, searched)
    return _find_files(cache)[0]


def _download_missing(spec: DatasetSpec, directory: Path, searched: list[str]) -> None:
    """Download into ``directory`` each file of ``spec`` it does not yet hold."""
    _, missing = _find_files(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unavailable(spec, searched, [f"cannot create {directory}: {exc}"]) from exc
    for name in missing:
        failures = []
        for mirror in spec.mirrors:
            url = mirror + name
            try:
                _download(url, directory / name, spec.sha256[name])
                break
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"{url}: {exc}")
        else:
            raise _unavailable(spec, searched, failures)


def _download(url: str, target: Path, sha256: str) -> None:
    """Fetch ``url`` to ``target`` atomically, only if its SHA-256 matches."""
    _log.info("Downloading %s to %s", url, target)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ValueError(
                f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()} "
                "(download discarded)"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _unavailable(spec: DatasetSpec, searched: list[str], failures: list[str]):
    """Build the error explaining what was tried and how to get the files."""
    lines = [f"Could not find or download the {spec.title} dataset.", "Searched:"]
    lines += [f"  - {entry}" for entry in searched]
    lines.append("Download failed:")
    lines += [f"  - {entry}" for entry in failures]
    lines.append("To get the data:")
    if spec.apt_package:
        lines.append(f"  - install the Debian package: apt-get install {spec.apt_package}")
    lines.append(
        f"  - download the 4 files ({', '.join(FILENAMES)}) from {spec.mirrors[0]} "
        "into a directory and pass load_data(path=<that directory>), or set "
        f"HPNN_DATA so that $HPNN_DATA/{spec.name} holds them."
    )
    return DatasetUnavailableError("\n".join(lines))
