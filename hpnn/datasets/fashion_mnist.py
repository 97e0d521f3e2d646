"""Fashion-MNIST: 70,000 28x28 grayscale images of 10 clothing classes.

Class labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat,
5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.
"""

from __future__ import annotations

from ._idx import DatasetSpec, load

__all__ = ["load_data"]

# SHA-256 of the .gz files as published by Zalando Research (the same bytes
# on both mirrors; MD5s match the project README). Debian's
# dataset-fashion-mnist recompresses them, so its .gz files hash differently
# although the decompressed IDX data is identical; local files are therefore
# not checksummed, only downloads.
_SPEC = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    sha256={
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    },
    apt_package="dataset-fashion-mnist",
)


def load_data(path=None):
    """Load the Fashion-MNIST dataset, like ``keras.datasets.fashion_mnist``.

    The files are taken from ``path`` if given, else from ``$HPNN_DATA/fashion-mnist``,
    the user cache ``~/.cache/hpnn/datasets/fashion-mnist``, or
    ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``),
    and are downloaded into the user cache as a last resort.

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
