"""MNIST: 70,000 28x28 grayscale images of handwritten digits 0-9."""

from __future__ import annotations

from ._idx import DatasetSpec, load

__all__ = ["load_data"]

# SHA-256 of LeCun's original .gz files (sizes 9912422, 28881, 1648877 and
# 4542 bytes), which the CVDF mirror serves unchanged; the same digests are
# published by several independent projects that pin this mirror.
_SPEC = DatasetSpec(
    name="mnist",
    title="MNIST",
    mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",),
    sha256={
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    },
)


def load_data(path=None):
    """Load the MNIST dataset, like ``keras.datasets.mnist``.

    Unlike Keras, which downloads a single ``mnist.npz``, this reads the four
    original IDX files. They are taken from ``path`` if given, else from
    ``$HPNN_DATA/mnist``, the user cache ``~/.cache/hpnn/datasets/mnist`` or
    ``/usr/share/datasets/mnist``, and are downloaded into the user cache as a
    last resort.

    Args:
        path: Optional directory holding the four IDX files
            (``train-images-idx3-ubyte.gz`` and so on, compressed or not).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``uint8`` arrays of shapes
        ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)`` and ``(10000,)``.

    Raises:
        FileNotFoundError: If ``path`` is given but lacks one of the files.
        hpnn.datasets._idx.DatasetUnavailableError: A ``RuntimeError`` raised
            when the data is nowhere on disk and cannot be downloaded.
        ValueError: If a file is malformed.
    """
    return load(_SPEC, path)
