"""Learning from little labelled data on Fashion-MNIST: transfer and Mean Teacher.

The target task is the five classes 5-9 (sandal, shirt, sneaker, bag, ankle boot)
with only 10, 100 or 1000 labelled training images a class. Four ways to train the
reference CNN of ``hpnn train`` (``hpnn.cli.build_model("cnn")``, with a 5-way head):

1. scratch: on the labelled few alone;
2. transfer, head only: the CNN is first trained on classes 0-4 (T-shirt, trouser,
   pullover, dress, coat; all their labels), then frozen, and a new head is trained
   on the labelled few (``hpnn.transfer.new_head``);
3. transfer, fine-tuned: then the whole at a learning rate of 1e-4
   (``hpnn.transfer.fine_tune``);
4. Mean Teacher: from scratch, on the labelled few plus ``--unlabelled`` other
   training images of classes 5-9 without their labels (``hpnn.semi.MeanTeacher``).

Every run trains a fixed number of steps (``--epochs`` epochs, more when the labelled
set is small: at least ``--min-steps`` steps); nothing is selected on the test set,
whose labels serve only the accuracy printed at the end.

    python examples/little_data.py                # about 10 minutes on 2 cores
    python examples/little_data.py --quick        # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import hpnn
from hpnn import layers, transfer
from hpnn.cli import build_model
from hpnn.semi import MeanTeacher

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
METHODS = ("scratch", "head only", "fine-tuned", "mean teacher")


def load(data_dir=None):
    """Fashion-MNIST as ``hpnn train`` loads it (scaled to [0, 1], ``(N, 28, 28, 1)``),
    integer labels: ``(x, y), (x_test, y_test)``."""
    (x, y), (x_test, y_test) = hpnn.datasets.fashion_mnist.load_data(path=data_dir)
    x = (x.astype("float32") / 255.0)[..., None]
    x_test = (x_test.astype("float32") / 255.0)[..., None]
    return (x, y.astype("int64")), (x_test, y_test.astype("int64"))


def classes(x, y, which):
    """The samples of ``which`` classes, relabelled 0..len(which)-1."""
    keep = np.isin(y, which)
    return x[keep], np.searchsorted(np.asarray(which), y[keep])


def cnn(n_classes, seed):
    """The reference CNN with an ``n_classes``-way softmax head, freshly initialised."""
    hpnn.utils.set_random_seed(seed)
    reference = build_model("cnn")  # ... Flatten, Dense(10, "softmax")
    head = layers.Dense(n_classes, activation="softmax")
    return hpnn.Sequential([hpnn.Input(shape=(28, 28, 1)), *reference.layers[:-1], head])


def compiled(model, learning_rate=1e-3):
    model.compile(
        optimizer=hpnn.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def epochs_for(n, args, scale=1.0):
    """``args.epochs`` epochs of ``n`` samples, or more to reach ``args.min_steps`` steps."""
    steps = math.ceil(n / args.batch_size)
    return max(1, round(scale * max(args.epochs, math.ceil(args.min_steps / steps))))


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def train_source(train, args):
    """The feature extractor: the CNN trained on every label of classes 0-4."""
    x, y = classes(*train, SOURCE)
    if args.source_limit:
        x, y = x[: args.source_limit], y[: args.source_limit]
    model = compiled(cnn(len(SOURCE), args.seed))
    model.fit(x, y, epochs=args.source_epochs, batch_size=64, verbose=0)
    return model, len(x)


def run_scratch(few, test, args):
    model = compiled(cnn(len(TARGET), args.seed))
    model.fit(*few, epochs=epochs_for(len(few[0]), args), batch_size=args.batch_size, verbose=0)
    return model.evaluate(*test, batch_size=500, verbose=0)[1]


def run_transfer(source, few, test, args):
    """Head only, then fine-tuned: two test accuracies."""
    hpnn.utils.set_random_seed(args.seed)
    model = compiled(transfer.new_head(source, len(TARGET)))
    n, bs = len(few[0]), args.batch_size
    model.fit(*few, epochs=epochs_for(n, args), batch_size=bs, verbose=0)
    head = model.evaluate(*test, batch_size=500, verbose=0)[1]
    transfer.fine_tune(model, learning_rate=1e-4)
    model.fit(*few, epochs=epochs_for(n, args, 0.5), batch_size=bs, verbose=0)
    return head, model.evaluate(*test, batch_size=500, verbose=0)[1]


def run_mean_teacher(few, unlabelled, test, args):
    augment = [
        layers.RandomTranslation(0.1, 0.1, interpolation="nearest", seed=args.seed),
        layers.GaussianNoise(0.1, seed=args.seed + 1),
    ]
    model = MeanTeacher(
        cnn(len(TARGET), args.seed),
        augment=augment,
        unlabelled_ratio=args.ratio,
        consistency=args.consistency,
        seed=args.seed,
    )
    compiled(model)
    epochs = epochs_for(len(few[0]), args)
    model.fit(*few, unlabelled=unlabelled, epochs=epochs, batch_size=args.batch_size, verbose=0)
    return model.evaluate(*test, batch_size=500, verbose=0)[1]


def run_row(per_class, train, test, source, args):
    """One line of the table: the methods' test accuracies and seconds at ``per_class``."""
    (few_x, few_y), rest = transfer.few_labels(*train, per_class, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(rest))
    unlabelled = rest[order[: args.unlabelled]]
    few = (few_x, few_y)
    scratch, t_scratch = timed(lambda: run_scratch(few, test, args))
    (head, tuned), t_transfer = timed(lambda: run_transfer(source, few, test, args))
    semi, t_semi = timed(lambda: run_mean_teacher(few, unlabelled, test, args))
    return {
        "accuracy": (scratch, head, tuned, semi),
        "seconds": (t_scratch, t_transfer, t_semi),
        "unlabelled": len(unlabelled),
    }


def print_table(rows, args, source_seconds):
    print()
    print(f"Test accuracy on the {rows[0]['test']:,} test images of classes 5-9 (seed {args.seed})")
    head = f"{'labels/class':>12} | " + " | ".join(f"{m:>12}" for m in METHODS)
    print(head + " | seconds: scratch, transfer, mean teacher")
    print("-" * len(head))
    for row in rows:
        accs = " | ".join(f"{a:>12.4f}" for a in row["accuracy"])
        secs = ", ".join(f"{s:.0f}" for s in row["seconds"])
        print(f"{row['per_class']:>12} | {accs} | {secs}")
    print(
        f"(feature extractor: {source_seconds:.0f} s on classes 0-4; Mean Teacher with "
        f"{rows[0]['unlabelled']:,} unlabelled images, {args.ratio} per labelled one a step)"
    )


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--epochs", type=int, default=10, help="epochs of the labelled set")
    p.add_argument("--min-steps", type=int, default=500, help="at least this many steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--source-epochs", type=int, default=2)
    p.add_argument("--source-limit", type=int, default=0, help="source images (0: all)")
    p.add_argument("--unlabelled", type=int, default=5000, help="unlabelled images of 5-9")
    p.add_argument("--ratio", type=int, default=4, help="unlabelled per labelled, a step")
    p.add_argument("--consistency", type=float, default=10.0)
    p.add_argument("--test-limit", type=int, default=0, help="test images (0: all 5,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="directory with the Fashion-MNIST files")
    p.add_argument("--quick", action="store_true", help="a tiny run for tests (seconds)")
    args = p.parse_args(argv)
    if args.quick:
        args.per_class, args.epochs, args.min_steps = [2, 5], 1, 6
        args.source_epochs, args.source_limit = 1, 1000
        args.unlabelled, args.ratio, args.test_limit = 200, 1, 500
    return args


def main(argv=None) -> int:
    args = parse(argv)
    train, test = load(args.data)
    target = classes(*train, TARGET)
    test = classes(*test, TARGET)
    if args.test_limit:
        test = (test[0][: args.test_limit], test[1][: args.test_limit])
    (source, n_source), source_seconds = timed(lambda: train_source(train, args))
    print(f"Feature extractor: trained on {n_source:,} images of classes 0-4")
    rows = []
    for per_class in args.per_class:
        row = run_row(per_class, target, test, source, args)
        row.update(per_class=per_class, test=len(test[0]))
        rows.append(row)
        accs = ", ".join(f"{m} {a:.4f}" for m, a in zip(METHODS, row["accuracy"], strict=True))
        print(f"{per_class} labels a class: {accs}", flush=True)
    print_table(rows, args, source_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
