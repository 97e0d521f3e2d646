"""``hpnn cluster``: DEC against k-means on the pixels, on Fashion-MNIST.

Both fit the same training images (the first ``--samples``) in the same run; both are
scored on the test images (the first ``--test-samples``; 0: all 10,000) by predicting
their clusters and comparing them with the labels (ACC, NMI, ARI). No label is read
before the scoring.
"""

from __future__ import annotations

import argparse
import sys
import time


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--samples", type=int, default=20000, help="training images to fit on")
    p.add_argument(
        "--test-samples", type=int, default=0, help="test images to score (0: all 10,000)"
    )
    p.add_argument("--clusters", type=int, default=10)
    p.add_argument("--pretrain-epochs", type=int, default=None, help="DEC's default if unset")
    p.add_argument("--max-iter", type=int, default=None, help="DEC's default if unset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="directory with the four Fashion-MNIST files")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1))
    return p


def _load(args):
    import numpy as np

    from hpnn.datasets import fashion_mnist

    (x, y), (x_test, y_test) = fashion_mnist.load_data(path=args.data)
    if not 0 < args.samples <= len(x):
        raise ValueError(f"--samples must be in [1, {len(x)}]. Received: {args.samples}")
    if not 0 <= args.test_samples <= len(x_test):
        raise ValueError(
            f"--test-samples must be in [0, {len(x_test)}]. Received: {args.test_samples}"
        )
    n_test = args.test_samples or len(x_test)
    x = x[: args.samples].reshape(args.samples, -1).astype(np.float32) / np.float32(255)
    x_test = x_test[:n_test].reshape(n_test, -1).astype(np.float32) / np.float32(255)
    return x, y[: args.samples], x_test, y_test[:n_test]


def _scores(y, labels) -> str:
    from hpnn.cluster.metrics import adjusted_rand, cluster_accuracy, normalized_mutual_info

    return (
        f"ACC {cluster_accuracy(y, labels):.4f}  NMI {normalized_mutual_info(y, labels):.4f}  "
        f"ARI {adjusted_rand(y, labels):.4f}"
    )


def run_cli(args) -> int:
    from hpnn.cluster.dec import DEC
    from hpnn.cluster.kmeans import KMeans

    x, _, x_test, y_test = _load(args)
    options = {"seed": args.seed, "verbose": args.verbose}
    if args.pretrain_epochs is not None:
        options["pretrain_epochs"] = args.pretrain_epochs
    if args.max_iter is not None:
        options["max_iter"] = args.max_iter
    print(f"Fitting on {len(x):,} training images; scoring on {len(x_test):,} test images")
    start = time.perf_counter()
    km = KMeans(args.clusters, seed=args.seed).fit(x)
    km_time = time.perf_counter() - start
    start = time.perf_counter()
    dec = DEC(args.clusters, **options).fit(x)
    dec_time = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in dec.fit_time_.items())
    print(f"k-means (pixels): {_scores(y_test, km.predict(x_test))}  ({km_time:.1f} s)")
    print(f"DEC:              {_scores(y_test, dec.predict(x_test))}  ({dec_time:.1f} s: {stages})")
    print(f"DEC's refinement: {dec.n_iter_} steps")
    return 0


def cli_main(argv=None) -> int:
    """``hpnn cluster ...`` from Python; returns the exit status (see :func:`hpnn.cli.main`)."""
    from hpnn.cli import main

    return main(["cluster", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(cli_main())
