"""The ``hpnn`` command: ``hpnn train`` runs the reference Fashion-MNIST job."""

from __future__ import annotations

import argparse
import sys
import time

MODELS = ("cnn", "mlp")


def build_model(name: str):
    """The reference CNN (the design document's example, fixed) or the 784-512-512-10 MLP."""
    from hpnn import Input, Sequential, layers

    if name == "cnn":
        return Sequential(
            [
                Input(shape=(28, 28, 1)),
                layers.Conv2D(32, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(32, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        )
    if name == "mlp":
        return Sequential(
            [
                Input(shape=(28, 28, 1)),
                layers.Flatten(),
                layers.Dense(512, activation="relu"),
                layers.Dense(512, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
    raise ValueError(f"Unknown model: expected one of {MODELS}. Received: {name!r}")


def load_fashion_mnist(data_dir=None, validation=0):
    """Fashion-MNIST scaled to [0, 1], shaped (N, 28, 28, 1), labels one-hot.

    Returns ``train, val, test``. With ``validation`` > 0 the last ``validation``
    training images are held out as the validation set; with 0 (the reference run)
    all 60,000 images train and the validation set is the test set, on which
    nothing is tuned or selected: its per-epoch accuracy is the test accuracy.
    """
    from hpnn.datasets import fashion_mnist
    from hpnn.utils import to_categorical

    (x, y), (x_test, y_test) = fashion_mnist.load_data(path=data_dir)
    x = (x.astype("float32") / 255.0)[..., None]
    x_test = (x_test.astype("float32") / 255.0)[..., None]
    y, y_test = to_categorical(y, 10), to_categorical(y_test, 10)
    if validation <= 0:
        return (x, y), (x_test, y_test), (x_test, y_test)
    cut = len(x) - validation
    return (x[:cut], y[:cut]), (x[cut:], y[cut:]), (x_test, y_test)


def _learning_rate(text):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}")
    return value


def train(args) -> float:
    import hpnn
    import hpnn.distributed

    if args.plot or args.lr_find:
        hpnn.plot.require()  # fail before training, not after it
    hpnn.utils.set_random_seed(args.seed)
    train_set, val_set, (x_test, y_test) = load_fashion_mnist(args.data, args.validation)
    if args.limit:
        train_set = (train_set[0][: args.limit], train_set[1][: args.limit])
    model = build_model(args.model)
    if args.verbose and hpnn.distributed.is_chief():
        model.summary()
        held_out = (
            f"the last {args.validation} training images"
            if args.validation > 0
            else ("the 10,000 test images (nothing is selected on them)")
        )
        print(f"Training on {len(train_set[0]):,} images; validation data: {held_out}")
    model.compile(
        optimizer=hpnn.optimizers.Adam(learning_rate=1e-3 if args.lr == "auto" else args.lr),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    if args.lr_find or args.lr == "auto":
        found = hpnn.tune.lr_find(
            model,
            *train_set,
            start_lr=1e-6,
            end_lr=1.0,
            num_steps=120,
            batch_size=args.batch_size,
            seed=args.seed,
        )
        if found.suggestion is None:
            raise RuntimeError("lr_find: the loss was never finite; pass --lr yourself")
        chief = hpnn.distributed.is_chief()
        if args.verbose and chief:
            print(found)
        if args.lr_find and chief:
            found.plot(args.lr_find)
            print(f"Wrote the learning-rate range test to {args.lr_find}")
        if args.lr == "auto":
            model.optimizer.learning_rate = found.suggestion
            if args.verbose and chief:
                print(f"Training with the suggested learning rate {found.suggestion:.3g}")
    start = time.perf_counter()
    history = model.fit(
        *train_set,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=val_set if len(val_set[0]) else None,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    h = history.history
    if args.validation <= 0 and h.get("val_loss"):  # the last validation pass was the test set
        loss, acc = h["val_loss"][-1], h["val_accuracy"][-1]
    else:
        loss, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    samples = len(train_set[0]) * args.epochs
    if hpnn.distributed.is_chief():  # under mpiexec, one report for the job
        ranks = hpnn.distributed.size()
        where = ""
        if ranks > 1:
            where = f" on {ranks} MPI ranks (global batch {args.batch_size * ranks})"
        print(f"Training time: {seconds:.1f} s ({samples / seconds:,.0f} samples/s){where}")
        print(f"Test loss: {loss:.4f}")
        print(f"Test accuracy: {acc:.4f}")
        if args.save:
            model.save(args.save)
            print(f"Saved the model to {args.save}")
        if args.plot:
            hpnn.plot.plot_history(history, args.plot)
            print(f"Wrote the learning curves to {args.plot}")
    return acc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hpnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model on Fashion-MNIST and print test accuracy")
    t.add_argument("--model", choices=MODELS, default="cnn")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument(
        "--lr",
        type=_learning_rate,
        default=0.001,
        help="Adam learning rate, or 'auto' for the range test's suggestion (hpnn.tune.lr_find)",
    )
    t.add_argument(
        "--lr-find",
        default=None,
        metavar="PNG",
        help="run the learning-rate range test before training and write its plot here",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--validation",
        type=int,
        default=0,
        help="hold out this many training images for validation (default 0: train on all "
        "60,000 and report the test set's accuracy each epoch as val_accuracy)",
    )
    t.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    t.add_argument("--data", default=None, help="directory with the four Fashion-MNIST files")
    t.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    t.add_argument(
        "--save",
        default=None,
        metavar="PATH",
        help="save the trained model (e.g. model.hpnn) for explain/robust/export",
    )
    t.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="write the learning curves to this PNG (needs matplotlib)",
    )
    from hpnn.cluster import cli as cluster_cli
    from hpnn.explain import cli as explain_cli
    from hpnn.export import cli as export_cli
    from hpnn.robust import cli as robust_cli

    tools = {
        "cluster": (cluster_cli, "DEC against k-means on Fashion-MNIST: ACC, NMI, ARI"),
        "explain": (
            explain_cli,
            "write PNG explanations (saliency, IG, Grad-CAM...) of a prediction",
        ),
        "export": (export_cli, "export a saved model to ONNX"),
        "robust": (robust_cli, "accuracy under FGSM, PGD and noise on the Fashion-MNIST test set"),
    }
    for name, (module, text) in tools.items():
        module.configure_parser(sub.add_parser(name, help=text))
    args = parser.parse_args(argv)
    try:
        if args.command in tools:
            return tools[args.command][0].run_cli(args)
        train(args)
    except (ValueError, RuntimeError, OSError, ImportError) as e:
        print(f"hpnn: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
