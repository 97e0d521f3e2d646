"""Keras 3 programs in the shape of the documentation's advanced examples, small: run as
``python advanced_programs.py hpnn`` (``import hpnn as keras``) or ``... keras``. Each
section prints one line that the two must share (shapes, keys, counts)."""

import os
import sys

import numpy as np

if sys.argv[1] == "hpnn":
    import hpnn as keras
    from hpnn import layers, ops
else:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers, ops

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)


# 1. knowledge distillation: a Model subclass with compute_loss, compiled without a loss
class Distiller(keras.Model):
    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1,
                temperature=3):  # fmt: skip
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha, self.temperature = alpha, temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        t = self.temperature
        distill = self.distillation_loss_fn(
            ops.softmax(teacher_pred / t, axis=1), ops.softmax(y_pred / t, axis=1)
        ) * (t**2)
        return self.alpha * student_loss + (1 - self.alpha) * distill

    def call(self, x):
        return self.student(x)


def mlp(width):
    return keras.Sequential([keras.Input((16,)), layers.Dense(width, activation="relu"),
                             layers.Dense(4)])  # fmt: skip


x = rng.random((128, 16)).astype("float32")
y = rng.integers(0, 4, 128)
teacher, student = mlp(32), mlp(8)
teacher.compile(optimizer="adam",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
teacher.fit(x, y, epochs=1, verbose=0)
distiller = Distiller(student=student, teacher=teacher)
distiller.compile(
    optimizer=keras.optimizers.Adam(),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
    student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    distillation_loss_fn=keras.losses.KLDivergence(),
)
history = distiller.fit(x, y, epochs=2, batch_size=32, verbose=0)
print("distill", sorted(history.history), len(history.history["loss"]))

# 2. a seq2seq encoder-decoder: the encoder's states start the decoder
enc_in = keras.Input(shape=(None, 6))
_, state_h, state_c = layers.LSTM(8, return_state=True)(enc_in)
dec_in = keras.Input(shape=(None, 5))
dec_seq = layers.LSTM(8, return_sequences=True)(dec_in, initial_state=[state_h, state_c])
dec_out = layers.Dense(5, activation="softmax")(dec_seq)
seq2seq = keras.Model([enc_in, dec_in], dec_out)
seq2seq.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
a = rng.random((32, 7, 6)).astype("float32")
b = np.eye(5, dtype="float32")[rng.integers(0, 5, (32, 4))]
seq2seq.fit([a, b], b, batch_size=16, epochs=1, verbose=0)
print("seq2seq", seq2seq.predict([a, b], verbose=0).shape, len(seq2seq.weights))


# 3. a transformer text classifier with position embeddings from ops.arange
class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = ops.arange(start=0, stop=ops.shape(x)[-1], step=1)
        return self.token_emb(x) + self.pos_emb(positions)


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"),
                                     layers.Dense(embed_dim)])  # fmt: skip
        self.norm1 = layers.LayerNormalization(epsilon=1e-6)
        self.norm2 = layers.LayerNormalization(epsilon=1e-6)
        self.drop1, self.drop2 = layers.Dropout(rate), layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn = self.drop1(self.att(inputs, inputs), training=training)
        out1 = self.norm1(inputs + attn)
        return self.norm2(out1 + self.drop2(self.ffn(out1), training=training))


maxlen, vocab = 10, 50
tokens = keras.Input(shape=(maxlen,))
h = TokenAndPositionEmbedding(maxlen, vocab, 8)(tokens)
h = TransformerBlock(8, 2, 16)(h)
h = layers.GlobalAveragePooling1D()(h)
outputs = layers.Dense(2, activation="softmax")(layers.Dropout(0.1)(h))
classifier = keras.Model(inputs=tokens, outputs=outputs)
classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])  # fmt: skip
ids = rng.integers(0, vocab, (64, maxlen))
history = classifier.fit(ids, rng.integers(0, 2, 64), batch_size=16, epochs=1, verbose=0,
                         validation_split=0.25)  # fmt: skip
print("transformer", sorted(history.history), classifier.count_params())

# 4. a 1-D convolutional autoencoder for time series (Conv1DTranspose)
series = rng.random((32, 16, 1)).astype("float32")
ae = keras.Sequential(
    [
        layers.Input(shape=(16, 1)),
        layers.Conv1D(8, 7, padding="same", strides=2, activation="relu"),
        layers.Dropout(0.2),
        layers.Conv1D(4, 7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(4, 7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(8, 7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(1, 7, padding="same"),
    ]
)
ae.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
ae.fit(series, series, epochs=1, batch_size=8, verbose=0,
       callbacks=[keras.callbacks.EarlyStopping(monitor="loss", patience=5)])  # fmt: skip
print("conv1d_ae", ae.predict(series, verbose=0).shape, ae.count_params())

# 5. imbalanced classification: confusion counts as metrics
xi = rng.random((200, 6)).astype("float32")
yi = (rng.random(200) < 0.1).astype("float32")
clf = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"),
                        layers.Dense(1, activation="sigmoid")])  # fmt: skip
clf.compile(
    optimizer="adam",
    loss="binary_crossentropy",
    metrics=[keras.metrics.FalseNegatives(name="fn"), keras.metrics.FalsePositives(name="fp"),
             keras.metrics.TrueNegatives(name="tn"), keras.metrics.TruePositives(name="tp"),
             keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")],
)  # fmt: skip
clf.fit(xi, yi, batch_size=64, epochs=1, verbose=0, class_weight={0: 1.0, 1: 9.0})
counts = clf.evaluate(xi, yi, verbose=0, return_dict=True)
print("imbalanced", sorted(counts), int(sum(counts[k] for k in ("fn", "fp", "tn", "tp"))))

# 6. attention scores out of a functional model
q = keras.Input(shape=(5, 8))
v = keras.Input(shape=(7, 8))
mha = layers.MultiHeadAttention(num_heads=2, key_dim=4)
out, scores = mha(q, v, return_attention_scores=True)
att = keras.Model([q, v], [out, scores])
o, s = att.predict([rng.random((3, 5, 8)), rng.random((3, 7, 8))], verbose=0)
print("attention", o.shape, s.shape)

# 7. keras.ops in preprocessing code
t = ops.convert_to_tensor(rng.random((4, 6)).astype("float32"))
values, indices = ops.top_k(t, k=2)
parts = ops.split(t, 3, axis=1)
print(
    "ops",
    tuple(ops.cumsum(t, axis=1).shape),
    tuple(values.shape),
    tuple(indices.shape),
    len(parts),
    tuple(ops.einsum("ij,kj->ik", t, t).shape),
    tuple(ops.pad(t, [[1, 1], [0, 2]]).shape),
    tuple(ops.linspace(0.0, 1.0, 5).shape),
)
