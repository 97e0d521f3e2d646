"""The benchmark's workloads, one setup per framework: hpnn, PyTorch eager, JAX jit.

Each ``setup_*`` does everything that is not timed (imports, layout conversion,
slicing into batches, building the model) and returns a :class:`Job` whose
``run_pass()`` runs one timed pass over the data and returns the samples it saw.
Frameworks are imported lazily, so a child process that measures one framework's
memory never loads another.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

IMAGE_SHAPE = (28, 28, 1)
CLASSES = 10
LEARNING_RATE = 1e-3
TORCH_THREADS = 2  # the machine's 2 cores, as numpy's OpenBLAS uses

# name -> (model, batch size, kind)
WORKLOADS = {
    "cnn32": ("cnn", 32, "train"),
    "cnn128": ("cnn", 128, "train"),
    "mlp128": ("mlp", 128, "train"),
    "infer128": ("cnn", 128, "predict"),
    "lstm128": ("lstm", 128, "train"),  # 28 steps x 28 features, LSTM(128), Dense(10)
    "gru128": ("gru", 128, "train"),
}
RECURRENT = ("lstm", "gru")


@dataclass
class Job:
    run_pass: Callable[[], int]
    extra: dict = field(default_factory=dict)


def jax_available() -> bool:
    return importlib.util.find_spec("jax") is not None


def make_data(n: int, seed: int = 0):
    """A fixed random float32 data set shaped like Fashion-MNIST: x (n, 28, 28, 1), labels (n,)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, *IMAGE_SHAPE), dtype=np.float32)
    labels = rng.integers(0, CLASSES, n)
    return x, labels


def _batches(arrays, batch: int):
    n = len(arrays[0]) // batch * batch  # whole batches only: every step has the same cost
    return [tuple(a[i : i + batch] for a in arrays) for i in range(0, n, batch)]


def _noop():
    pass


# -- hpnn -------------------------------------------------------------------------------
def _hpnn_model(model_name: str, seed: int):
    import hpnn
    from hpnn.cli import build_model

    hpnn.utils.set_random_seed(seed)
    if model_name in RECURRENT:
        cell = hpnn.layers.LSTM if model_name == "lstm" else hpnn.layers.GRU
        model = hpnn.Sequential(
            [
                hpnn.Input(shape=IMAGE_SHAPE[:2]),
                cell(128),
                hpnn.layers.Dense(CLASSES, activation="softmax"),
            ]
        )
    else:
        model = build_model(model_name)
    model.compile(
        optimizer=hpnn.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="categorical_crossentropy",
    )
    return model


def setup_hpnn(workload, x, labels, on_ready=_noop, seed=0) -> Job:
    model_name, batch, kind = WORKLOADS[workload]
    import hpnn  # (imported before on_ready: part of the baseline)
    import hpnn.engine.kernels

    hpnn.engine.kernels.warm_up()  # numba and its LLVM, when installed: part of the runtime

    y = np.eye(CLASSES, dtype=np.float32)[labels]
    if model_name in RECURRENT:
        x = x[..., 0]  # rows as time steps: (N, 28, 28)
    if kind == "predict":
        on_ready()
        model = _hpnn_model(model_name, seed)

        def predict_pass():
            model.predict(x, batch_size=batch, verbose=0)
            return len(x)

        return Job(predict_pass)
    batches = _batches((x, y), batch)
    on_ready()
    model = _hpnn_model(model_name, seed)

    def train_pass():
        for xb, yb in batches:
            model.train_on_batch(xb, yb)  # the step where fit runs it (split across cores)
        return len(batches) * batch

    def fit_pass():
        n = len(batches) * batch
        model.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0, shuffle=True)
        return n

    return Job(train_pass, {"fit": fit_pass, "model": model})


# -- PyTorch (eager, NCHW) ----------------------------------------------------------------
def _torch_net(model_name: str):
    from torch import nn

    if model_name in RECURRENT:

        class Recurrent(nn.Module):
            def __init__(self):
                super().__init__()
                rnn = nn.LSTM if model_name == "lstm" else nn.GRU
                self.rnn = rnn(IMAGE_SHAPE[1], 128, batch_first=True)
                self.fc = nn.Linear(128, CLASSES)

            def forward(self, x):
                return self.fc(self.rnn(x)[0][:, -1])

        return Recurrent()
    if model_name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 5 * 5, CLASSES),
        )
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, CLASSES),
    )


def setup_torch(workload, x, labels, on_ready=_noop, seed=0, threads=TORCH_THREADS) -> Job:
    import torch

    torch.set_num_threads(threads)
    model_name, batch, kind = WORKLOADS[workload]
    layout = (0, 3, 1, 2) if model_name not in RECURRENT else (0, 1, 2, 3)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(layout)))
    if model_name in RECURRENT:
        xt = xt[..., 0]
    yt = torch.from_numpy(labels.astype(np.int64))
    if kind == "predict":
        on_ready()
        torch.manual_seed(seed)
        net = _torch_net(model_name).eval()

        def predict_pass():
            with torch.inference_mode():
                outs = [torch.softmax(net(xb), dim=1) for xb in torch.split(xt, batch)]
                torch.cat(outs).numpy()  # hpnn's predict returns one array too
            return len(xt)

        return Job(predict_pass)
    batches = _batches((xt, yt), batch)
    on_ready()
    torch.manual_seed(seed)
    net = _torch_net(model_name).train()
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)

    def train_pass():
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(
                net(xb), yb
            )  # logits in: the fused log-softmax form
            loss.backward()
            opt.step()
            loss.item()  # as hpnn's train_step, which returns the loss as a float
        return len(batches) * batch

    return Job(train_pass)


# -- JAX (jit, NHWC) -----------------------------------------------------------------------
def _jax_params(model_name: str, seed: int):
    import jax
    import jax.numpy as jnp

    shapes = (
        [(3, 3, 1, 32), (32,), (3, 3, 32, 32), (32,), (800, CLASSES), (CLASSES,)]
        if model_name == "cnn"
        else [(784, 512), (512,), (512, 512), (512,), (512, CLASSES), (CLASSES,)]
    )
    keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
    params = []
    for key, shape in zip(keys, shapes, strict=True):
        if len(shape) == 1:
            params.append(jnp.zeros(shape, jnp.float32))
        else:
            fan_in = int(np.prod(shape[:-1]))
            params.append(jax.random.normal(key, shape, jnp.float32) * (2.0 / fan_in) ** 0.5)
    return params


def _jax_logits(params, x, model_name: str):
    import jax
    import jax.numpy as jnp
    from jax import lax

    if model_name == "mlp":
        h = x.reshape(x.shape[0], -1)
        for i in range(0, 4, 2):
            h = jax.nn.relu(h @ params[i] + params[i + 1])
        return h @ params[4] + params[5]
    h = x
    for i in range(0, 4, 2):
        h = lax.conv_general_dilated(
            h, params[i], (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        h = jax.nn.relu(h + params[i + 1])
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return h.reshape(h.shape[0], -1) @ params[4] + params[5]


def _jax_train_step(model_name: str):
    import jax
    import jax.numpy as jnp

    b1, b2, eps = 0.9, 0.999, 1e-7

    def loss_fn(params, xb, yb):
        logp = jax.nn.log_softmax(_jax_logits(params, xb, model_name))
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(params, m, v, t, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        t = t + 1
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads, strict=True)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads, strict=True)]
        lr = LEARNING_RATE * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        params = [
            p - lr * mi / (jnp.sqrt(vi) + eps) for p, mi, vi in zip(params, m, v, strict=True)
        ]
        return params, m, v, t, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def setup_jax(workload, x, labels, on_ready=_noop, seed=0) -> Job:
    import jax
    import jax.numpy as jnp

    model_name, batch, kind = WORKLOADS[workload]
    if kind == "predict":
        xs = [jax.device_put(xb) for (xb,) in _batches((x,), batch)]
        rest = x[len(xs) * batch :]
        on_ready()
        params = _jax_params(model_name, seed)
        forward = jax.jit(lambda p, xb: jax.nn.softmax(_jax_logits(p, xb, model_name)))

        def predict_pass():
            outs = [forward(params, xb) for xb in xs]
            if len(rest):
                outs.append(forward(params, jax.device_put(rest)))
            np.asarray(jnp.concatenate(outs))
            return len(x)

        return Job(predict_pass)
    batches = [
        (jax.device_put(xb), jax.device_put(yb.astype(np.int32)))
        for xb, yb in _batches((x, labels), batch)
    ]
    on_ready()
    params = _jax_params(model_name, seed)
    state = [params, [jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params]]
    state.append(jnp.zeros((), jnp.float32))
    step = _jax_train_step(model_name)

    def train_pass():
        nonlocal state
        for xb, yb in batches:
            *state, loss = step(*state, xb, yb)
            float(loss)  # wait for the step, as hpnn and torch do with their loss
        return len(batches) * batch

    return Job(train_pass)


# -- PyTorch as installed: in a child process that never imports hpnn ----------------------
STOCK_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stock_server.py")


def setup_torch_stock(workload, x, labels, on_ready=_noop, seed=0) -> Job:
    """PyTorch in its own process, which never imports hpnn: glibc's malloc keeps its
    defaults there, while in this process hpnn's import has raised its mmap and trim
    thresholds (``hpnn.allocator``), which speeds PyTorch up too. The child builds the
    same data (``make_data`` of the same size) and runs one pass per request, so the
    passes still alternate with the other frameworks'."""
    child = subprocess.Popen(
        [sys.executable, STOCK_SERVER, workload, str(len(x)), str(seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")},
    )
    ready = child.stdout.readline().strip()
    if ready != "ready":
        child.kill()
        raise RuntimeError(f"the stock PyTorch child did not start (said {ready!r})")
    on_ready()
    cpu = [0.0]

    def run_pass():
        child.stdin.write("pass\n")
        child.stdin.flush()
        n, seconds = child.stdout.readline().split()
        cpu[0] = float(seconds)
        return int(n)

    def close():
        if child.poll() is None:
            child.stdin.close()
            child.wait(timeout=30)

    return Job(run_pass, {"child_cpu": lambda: cpu[0], "close": close})


SETUPS = {
    "hpnn": setup_hpnn,
    "torch": setup_torch,
    "torch-stock": setup_torch_stock,
    "jax": setup_jax,
}


# -- cold start: what a fresh `python -c` runs, up to the end of the first training step ------
COLD_START = {
    "hpnn": """
import numpy as np
import hpnn
from hpnn.cli import build_model
model = build_model("cnn")
model.compile(optimizer=hpnn.optimizers.Adam(learning_rate=1e-3), loss="categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.random((32, 28, 28, 1), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)]
model.train_step(x, y)
print("step done", flush=True)
""",
    "torch": """
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
torch.set_num_threads(2)
net = nn.Sequential(
    nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(800, 10),
)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
x = torch.from_numpy(rng.random((32, 1, 28, 28), dtype=np.float32))
y = torch.from_numpy(rng.integers(0, 10, 32))
opt.zero_grad()
loss = torch.nn.functional.cross_entropy(net(x), y)
loss.backward()
opt.step()
loss.item()
print("step done", flush=True)
""",
    "jax": """
import sys
sys.path.insert(0, "benchmarks")
from workloads import make_data, setup_jax
x, labels = make_data(32)
setup_jax("cnn32", x, labels).run_pass()
print("step done", flush=True)
""",
}


# -- arithmetic ------------------------------------------------------------------------------
def hpnn_forward_macs(model_name: str) -> tuple[int, list[tuple[str, int]]]:
    """Multiply-accumulates of one sample's forward pass, from the model's layer shapes."""
    from hpnn.cli import build_model

    model = build_model(model_name)
    per_layer = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        # Conv2D: every output position does kh*kw*cin*cout MACs; Dense: in*out once.
        positions = int(np.prod(layer.output_shape[1:-1])) if len(layer.output_shape) > 2 else 1
        label = f"{type(layer).__name__}->{tuple(layer.output_shape[1:])}"
        per_layer.append((label, positions * int(np.prod(kernel.shape))))
    return sum(m for _, m in per_layer), per_layer
