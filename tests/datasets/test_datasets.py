"""Tests for hpnn.datasets: IDX parsing, look-up order, download, real data."""

import dataclasses
import gzip
import hashlib
import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from hpnn.datasets import _idx, fashion_mnist, mnist

FILENAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array, magic):
    """Encode a uint8 array as an IDX file."""
    array = np.asarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big")
    header += b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def make_dataset(n_train=6, n_test=4, seed=0):
    """Return a small random dataset and its four IDX files as bytes (gzipped)."""
    rng = np.random.default_rng(seed)
    data = {
        FILENAMES[0]: rng.integers(0, 256, (n_train, 5, 3), dtype=np.uint8),
        FILENAMES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        FILENAMES[2]: rng.integers(0, 256, (n_test, 5, 3), dtype=np.uint8),
        FILENAMES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    blobs = {
        name: gzip.compress(idx_bytes(arr, 2051 if arr.ndim == 3 else 2049), mtime=0)
        for name, arr in data.items()
    }
    return data, blobs


def write_dataset(directory, seed=0, gz=True, **kwargs):
    """Write a small dataset into ``directory``; return its arrays by filename."""
    data, blobs = make_dataset(seed=seed, **kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if gz:
            (directory / name).write_bytes(blob)
        else:
            (directory / name.removesuffix(".gz")).write_bytes(gzip.decompress(blob))
    return data


def assert_loaded(result, data):
    (x_train, y_train), (x_test, y_test) = result
    for got, name in zip((x_train, y_train, x_test, y_test), FILENAMES, strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, data[name])


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point every data root at tmp dirs and make any network access fail."""
    monkeypatch.delenv("HPNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(_idx, "SYSTEM_DATA_DIR", tmp_path / "system")

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return tmp_path


def serve(monkeypatch, routes):
    """Make urlopen return ``routes[url]`` bytes, or fail; record requested URLs."""
    requested = []

    def fake_urlopen(url, timeout=None):
        assert timeout is not None
        requested.append(url)
        if url not in routes:
            raise urllib.error.URLError("unreachable")
        return io.BytesIO(routes[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


def pin_checksums(monkeypatch, module, blobs):
    """Replace the module's pinned SHA-256 table with that of ``blobs``."""
    sha = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    monkeypatch.setattr(module, "_SPEC", dataclasses.replace(module._SPEC, sha256=sha))


# --- IDX parsing -----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(images, 2051)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = _idx.read_idx(path, 2051)
    assert got.shape == (2, 3, 4) and got.dtype == np.uint8
    assert got.flags.writeable
    np.testing.assert_array_equal(got, images)


def test_read_idx_labels(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes([3, 1, 4, 1, 5], 2049))
    np.testing.assert_array_equal(_idx.read_idx(path, 2049), [3, 1, 4, 1, 5])


def test_bad_magic_names_file(tmp_path):
    path = tmp_path / "labels-as-images.gz"
    path.write_bytes(gzip.compress(idx_bytes([1, 2, 3], 2049)))
    with pytest.raises(ValueError, match=r"labels-as-images\.gz.*magic number 2049"):
        _idx.read_idx(path, 2051)


@pytest.mark.parametrize(
    ("cut", "message"),
    [(2, "truncated header"), (9, "truncated header"), (-1, "truncated data")],
)
def test_truncated_file(tmp_path, cut, message):
    raw = idx_bytes(np.zeros((2, 3, 4)), 2051)
    path = tmp_path / "short"
    path.write_bytes(raw[:cut])
    with pytest.raises(ValueError, match=rf"short.*{message}"):
        _idx.read_idx(path, 2051)


def test_trailing_data(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes([1, 2], 2049) + b"\0")
    with pytest.raises(ValueError, match=r"long.*unexpected data after"):
        _idx.read_idx(path, 2049)


def test_implausible_dimensions(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes((2051).to_bytes(4, "big") + b"\xff\xff\xff\xff" * 3)
    with pytest.raises(ValueError, match=r"huge.*implausible dimensions"):
        _idx.read_idx(path, 2051)


@pytest.mark.parametrize(
    "content",
    [
        gzip.compress(idx_bytes(np.zeros((20, 5, 5)), 2051))[:-30],  # cut gz stream
        b"this is not gzip data at all",
    ],
    ids=["truncated-gzip", "not-gzip"],
)
def test_corrupt_gzip(tmp_path, content):
    path = tmp_path / "bad.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.gz.*gzip"):
        _idx.read_idx(path, 2051)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        _idx.read_idx(tmp_path / "nope.gz", 2051)


# --- loading and look-up order ---------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_explicit_path(tmp_path, gz):
    data = write_dataset(tmp_path / "d", gz=gz)
    assert_loaded(fashion_mnist.load_data(path=tmp_path / "d"), data)
    assert_loaded(mnist.load_data(path=str(tmp_path / "d")), data)


def test_image_label_count_mismatch(tmp_path):
    write_dataset(tmp_path / "d")
    labels = gzip.compress(idx_bytes([1, 2, 3], 2049))
    (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").write_bytes(labels)
    with pytest.raises(ValueError, match=r"4 images.*3 labels"):
        mnist.load_data(path=tmp_path / "d")


def test_explicit_path_missing_files_is_an_error(tmp_path):
    write_dataset(cache_of(tmp_path, "fashion-mnist"), seed=1)  # never fallen back to
    write_dataset(tmp_path / "d")
    (tmp_path / "d" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\.gz"):
        fashion_mnist.load_data(path=tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        fashion_mnist.load_data(path=tmp_path / "absent")


def test_lookup_order(tmp_path, monkeypatch):
    roots = {
        "path": tmp_path / "explicit",
        "env": tmp_path / "env" / "fashion-mnist",
        "cache": tmp_path / "xdg-cache" / "hpnn" / "datasets" / "fashion-mnist",
        "system": tmp_path / "system" / "fashion-mnist",
    }
    data = {key: write_dataset(root, seed=i) for i, (key, root) in enumerate(roots.items())}
    monkeypatch.setenv("HPNN_DATA", str(tmp_path / "env"))
    assert_loaded(fashion_mnist.load_data(path=roots["path"]), data["path"])
    assert_loaded(fashion_mnist.load_data(), data["env"])
    (roots["env"] / FILENAMES[0]).unlink()  # incomplete $HPNN_DATA falls through
    assert_loaded(fashion_mnist.load_data(), data["cache"])
    (roots["cache"] / FILENAMES[3]).unlink()
    assert_loaded(fashion_mnist.load_data(), data["system"])


def test_cache_dir_respects_xdg(tmp_path, monkeypatch):
    assert _idx.cache_dir(mnist._SPEC) == tmp_path / "xdg-cache/hpnn/datasets/mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _idx.cache_dir(mnist._SPEC) == tmp_path / "home/.cache/hpnn/datasets/mnist"


# --- download --------------------------------------------------------------


def cache_of(tmp_path, name):
    return tmp_path / "xdg-cache" / "hpnn" / "datasets" / name


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    data, blobs = make_dataset()
    pin_checksums(monkeypatch, fashion_mnist, blobs)
    first, second = fashion_mnist._SPEC.mirrors
    # The first mirror is down; every file must come from the fallback.
    requested = serve(monkeypatch, {second + name: blob for name, blob in blobs.items()})
    assert_loaded(fashion_mnist.load_data(), data)
    assert requested == [m + n for n in FILENAMES for m in (first, second)]
    cache = cache_of(tmp_path, "fashion-mnist")
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILENAMES)
    for name, blob in blobs.items():
        assert (cache / name).read_bytes() == blob
    requested.clear()
    assert_loaded(fashion_mnist.load_data(), data)  # served from the cache now
    assert requested == []


def test_download_only_fetches_missing_files(tmp_path, monkeypatch):
    data, blobs = make_dataset()
    pin_checksums(monkeypatch, mnist, blobs)
    cache = cache_of(tmp_path, "mnist")
    cache.mkdir(parents=True)
    (cache / FILENAMES[0]).write_bytes(blobs[FILENAMES[0]])
    mirror = mnist._SPEC.mirrors[0]
    requested = serve(monkeypatch, {mirror + name: blob for name, blob in blobs.items()})
    assert_loaded(mnist.load_data(), data)
    assert requested == [mirror + name for name in FILENAMES[1:]]


def test_checksum_mismatch_leaves_nothing_in_cache(tmp_path, monkeypatch):
    _, blobs = make_dataset()
    pin_checksums(monkeypatch, mnist, blobs)
    mirror = mnist._SPEC.mirrors[0]
    routes = {mirror + name: blob for name, blob in blobs.items()}
    routes[mirror + FILENAMES[0]] = b"<html>mirror error page</html>"
    serve(monkeypatch, routes)
    with pytest.raises(RuntimeError, match="SHA-256 mismatch") as info:
        mnist.load_data()
    assert isinstance(info.value, _idx.DatasetUnavailableError)
    assert hashlib.sha256(routes[mirror + FILENAMES[0]]).hexdigest() in str(info.value)
    assert list(cache_of(tmp_path, "mnist").iterdir()) == []


def test_offline_error_explains_how_to_get_data(tmp_path, monkeypatch):
    monkeypatch.setenv("HPNN_DATA", str(tmp_path / "env"))
    with pytest.raises(RuntimeError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "path=" in message and "HPNN_DATA" in message
    assert "network disabled in tests" in message
    for place in (
        tmp_path / "env" / "fashion-mnist",
        cache_of(tmp_path, "fashion-mnist"),
        tmp_path / "system" / "fashion-mnist",
    ):
        assert str(place) in message
    for mirror in fashion_mnist._SPEC.mirrors:
        assert mirror + FILENAMES[0] in message
    assert list(cache_of(tmp_path, "fashion-mnist").iterdir()) == []


def test_mnist_offline_error_has_no_apt_hint():
    with pytest.raises(_idx.DatasetUnavailableError) as info:
        mnist.load_data()
    assert "apt-get" not in str(info.value)
    assert "HPNN_DATA" in str(info.value)


@pytest.mark.parametrize("module", [fashion_mnist, mnist])
def test_pinned_checksums_cover_all_files(module):
    assert set(module._SPEC.sha256) == set(FILENAMES)
    for digest in module._SPEC.sha256.values():
        assert len(digest) == 64 and int(digest, 16) >= 0


# --- real data -------------------------------------------------------------


@pytest.mark.skipif(
    not all((DEBIAN_FASHION / name).is_file() for name in FILENAMES),
    reason="dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.setattr(_idx, "SYSTEM_DATA_DIR", DEBIAN_FASHION.parent)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    assert y_train.min() == 0 and y_train.max() == 9
    assert y_test.min() == 0 and y_test.max() == 9
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
