"""Typical Keras 3 tutorial programs, small: run as ``python tutorial_models.py hpnn``
(with ``import hpnn as keras``) or ``... keras`` (Keras itself). Each section prints
one line of results that the two must share (history keys, output shapes)."""

import os
import sys

import numpy as np

if sys.argv[1] == "hpnn":
    import hpnn as keras
    from hpnn import layers
else:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)

# 1. an MLP classifier with early stopping and AUC
x = rng.random((256, 20)).astype("float32")
y = (x[:, 0] > 0.5).astype("int64")
model = keras.Sequential(
    [
        keras.Input(shape=(20,)),
        layers.Dense(32, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=1e-2),
    loss="binary_crossentropy",
    metrics=["accuracy", keras.metrics.AUC()],
)
stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
history = model.fit(
    x, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0, callbacks=[stop]
)
print("mlp", sorted(history.history))

# 2. a text classifier on token ids
ids = rng.integers(1, 100, (128, 12))
labels = rng.integers(0, 2, 128)
text = keras.Sequential(
    [
        keras.Input(shape=(12,), dtype="int32"),
        layers.Embedding(100, 8),
        layers.GlobalAveragePooling1D(),
        layers.Dense(1, activation="sigmoid"),
    ]
)
text.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
text.fit(ids, labels, epochs=1, verbose=0)
print("text", len(text.evaluate(ids, labels, verbose=0)))

# 3. a convolutional autoencoder
images = rng.random((32, 16, 16, 1)).astype("float32")
inputs = keras.Input(shape=(16, 16, 1))
h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
h = layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(h)
outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(h)
autoencoder = keras.Model(inputs, outputs)
autoencoder.compile(optimizer="adam", loss="mse")
autoencoder.fit(images, images, epochs=1, batch_size=8, verbose=0)
print("autoencoder", autoencoder.predict(images[:2], verbose=0).shape)

# 4. regression with a Normalization layer adapted to the data
features = rng.normal(5, 3, (100, 4)).astype("float32")
target = features @ np.array([1.0, -2.0, 0.5, 3.0], "float32")
norm = layers.Normalization()
norm.adapt(features)
regression = keras.Sequential(
    [keras.Input((4,)), norm, layers.Dense(16, activation="relu"), layers.Dense(1)]
)
regression.compile(optimizer="adam", loss="mean_absolute_error")
regression.fit(features, target, epochs=2, verbose=0)
print("regression", regression.evaluate(features, target, verbose=0) > 0)

# 5. several inputs and outputs, losses and metrics by output name
a = keras.Input((5,), name="a")
b = keras.Input((3,), name="b")
z = layers.concatenate([layers.Dense(8, activation="relu")(a), b])
score = layers.Dense(1, name="score")(z)
cls = layers.Dense(3, activation="softmax", name="cls")(z)
heads = keras.Model(inputs=[a, b], outputs=[score, cls])
heads.compile(
    optimizer="rmsprop",
    loss={"score": "mse", "cls": "sparse_categorical_crossentropy"},
    loss_weights={"score": 1.0, "cls": 0.2},
    metrics={"cls": ["accuracy"]},
)
history = heads.fit(
    {"a": rng.random((40, 5)), "b": rng.random((40, 3))},
    {"score": rng.random((40, 1)), "cls": rng.integers(0, 3, 40)},
    epochs=1,
    verbose=0,
)
print("heads", sorted(history.history))

# 6. an LSTM with (recurrent) dropout and class weights
sequences = rng.random((64, 10, 3)).astype("float32")
lstm = keras.Sequential(
    [
        keras.Input((10, 3)),
        layers.LSTM(8, dropout=0.1, recurrent_dropout=0.1),
        layers.Dense(1, activation="sigmoid"),
    ]
)
lstm.compile(optimizer="adam", loss="binary_crossentropy")
lstm.fit(sequences, rng.integers(0, 2, 64), epochs=1, class_weight={0: 1.0, 1: 2.0}, verbose=0)
print("lstm", lstm.predict(sequences[:3], verbose=0).shape)

# 7. a transformer block written with tensor arithmetic
inputs = keras.Input((10, 16))
attention = layers.MultiHeadAttention(num_heads=2, key_dim=8)(inputs, inputs)
x7 = layers.LayerNormalization(epsilon=1e-6)(inputs + attention)
ff = layers.Dense(16)(layers.Dense(32, activation="relu")(x7))
x7 = layers.LayerNormalization(epsilon=1e-6)(x7 + ff * 0.5)
pooled = layers.GlobalAveragePooling1D()(x7)
transformer = keras.Model(inputs, layers.Dense(2, activation="softmax")(pooled))
transformer.compile("adam", "sparse_categorical_crossentropy")
transformer.fit(rng.random((32, 10, 16)), rng.integers(0, 2, 32), epochs=1, verbose=0)
print("transformer", transformer.predict(rng.random((2, 10, 16)), verbose=0).shape)


# 8. a custom layer that holds layers, and a subclassed model
class TokenAndPosition(layers.Layer):
    def __init__(self, maxlen, vocab, dim, **kwargs):
        super().__init__(**kwargs)
        self.token = layers.Embedding(vocab, dim)
        self.position = layers.Embedding(maxlen, dim)

    def call(self, x):
        return self.token(x) + self.position(np.arange(x.shape[-1]))


class Classifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.embed = TokenAndPosition(12, 100, 8)
        self.pool = layers.GlobalAveragePooling1D()
        self.out = layers.Dense(2, activation="softmax")

    def call(self, x):
        return self.out(self.pool(self.embed(x)))


classifier = Classifier()
classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = classifier.fit(ids, labels, epochs=1, batch_size=32, verbose=0)
print("subclassed", sorted(history.history), classifier.count_params())

# 9. a feature extractor and a Grad-CAM-style model from an existing model's tensors
cnn = keras.Sequential(
    [
        keras.Input((12, 12, 3)),
        layers.Conv2D(4, 3, activation="relu", name="conv_a"),
        layers.SeparableConv2D(6, 3, name="conv_b"),
        layers.GroupNormalization(groups=2),
        layers.LeakyReLU(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax"),
    ]
)
extractor = keras.Model(inputs=cnn.inputs, outputs=[layer.output for layer in cnn.layers])
features = extractor.predict(rng.random((2, 12, 12, 3)), verbose=0)
grad_model = keras.Model(cnn.inputs, [cnn.get_layer("conv_b").output, cnn.outputs[0]])
maps, probs = grad_model.predict(rng.random((2, 12, 12, 3)), verbose=0)
print("features", [f.shape for f in features], maps.shape, probs.shape)


# 10. a custom layer written with keras.ops, newer activations, focal loss, constraints
class Gate(layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="w")

    def call(self, x):
        return keras.ops.multiply(x, keras.ops.sigmoid(self.w)) + keras.ops.mean(
            x, axis=-1, keepdims=True
        )


gated = keras.Sequential(
    [
        keras.Input((8,)),
        Gate(),
        layers.Dense(16, activation="gelu", kernel_constraint=keras.constraints.MaxNorm(2.0)),
        layers.PReLU(),
        layers.Dense(1, activation="sigmoid"),
    ]
)
gated.compile(
    optimizer=keras.optimizers.Lion(1e-3),
    loss=keras.losses.BinaryFocalCrossentropy(gamma=2.0),
    metrics=[keras.metrics.RootMeanSquaredError()],
)
history = gated.fit(rng.random((64, 8)), rng.integers(0, 2, (64, 1)), epochs=2, verbose=0)
print("ops_layer", sorted(history.history), gated.count_params())
