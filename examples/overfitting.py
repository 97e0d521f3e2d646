"""Fighting over-fitting on Fashion-MNIST, one remedy at a time.

A CNN big enough to memorise 5,000 training images is trained four ways; each
line adds a remedy to the one before:

1. baseline
2. + Dropout(0.5) and L2(1e-4) weight decay on the dense layers
3. + data augmentation (random horizontal flips, translations up to 10%)
4. + EarlyStopping(monitor="val_accuracy", patience=5, restore_best_weights=True)

    python examples/overfitting.py [--train 5000] [--epochs 30]
"""

import argparse

import numpy as np

import hpnn as keras
from hpnn import layers, regularizers


def build(dropout=False, l2=False, augment=False):
    reg = regularizers.L2(1e-4) if l2 else None
    stack = [keras.Input(shape=(28, 28, 1))]
    if augment:
        stack += [
            layers.RandomFlip("horizontal", seed=1),
            layers.RandomTranslation(0.1, 0.1, seed=2),
        ]
    stack += [
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(256, activation="relu", kernel_regularizer=reg),
    ]
    if dropout:
        stack.append(layers.Dropout(0.5))
    stack.append(layers.Dense(10, activation="softmax", kernel_regularizer=reg))
    model = keras.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    (x, y), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    x = (x.astype("float32") / 255)[..., None]
    x_test = (x_test.astype("float32") / 255)[..., None]
    x_train, y_train = x[: args.train], y[: args.train]
    x_val, y_val = x[50000:55000], y[50000:55000]

    steps = [
        ("baseline", {}, []),
        ("+ dropout + L2", {"dropout": True, "l2": True}, []),
        ("+ augmentation", {"dropout": True, "l2": True, "augment": True}, []),
        (
            "+ early stopping",
            {"dropout": True, "l2": True, "augment": True},
            [
                keras.callbacks.EarlyStopping(
                    monitor="val_accuracy", patience=5, restore_best_weights=True
                )
            ],
        ),
    ]
    rows = []
    for name, options, callbacks in steps:
        keras.utils.set_random_seed(0)
        model = build(**options)
        hist = model.fit(
            x_train,
            y_train,
            epochs=args.epochs,
            batch_size=64,
            verbose=0,
            validation_data=(x_val, y_val),
            callbacks=callbacks,
        )
        h = hist.history
        _, test_acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
        rows.append(
            (
                name,
                len(h["loss"]),
                h["accuracy"][-1],
                h["val_accuracy"][-1],
                max(h["val_accuracy"]),
                int(np.argmax(h["val_accuracy"])) + 1,
                test_acc,
            )
        )
        print(f"{name}: {hist.diagnose()}", flush=True)
    print(
        f"\n{'step':<18} {'epochs':>6} {'train acc':>9} {'val acc':>8} {'best val':>14} "
        f"{'test acc':>8}"
    )
    for name, n, tr, va, best, at, te in rows:
        print(f"{name:<18} {n:>6} {tr:>9.4f} {va:>8.4f} {best:>8.4f} (ep {at:>2}) {te:>8.4f}")


if __name__ == "__main__":
    main()
