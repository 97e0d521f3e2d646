"""Classify Fashion-MNIST with an LSTM that reads each image as 28 rows of 28 pixels.

python examples/lstm_fashion_mnist.py [--epochs 3] [--seed 0]
"""

import argparse

import hpnn as keras
from hpnn import layers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)  # chosen on the validation split
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    x_train = x_train.astype("float32") / 255  # (60000, 28, 28): 28 steps of 28 features
    x_test = x_test.astype("float32") / 255

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.LSTM(128),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=0.1,
        verbose=2,
    )
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"Test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
