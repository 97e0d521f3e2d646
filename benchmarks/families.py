"""hpnn's ``model.fit`` against a PyTorch eager training loop, six model families, one process.

Families: a ResNet-style CNN and a VGG-style CNN on 32x32x3 images, a TextCNN, a
one-block transformer encoder, a bidirectional LSTM (the last three on int token
sequences), and a dense autoencoder on 784 inputs. Both sides get the same
architecture (parameter counts are checked equal), Adam(1e-3) with Keras' epsilon,
the same batch size and the same synthetic float32 data (``np.random.default_rng(0)``).
hpnn runs ``model.fit(..., epochs=1, shuffle=False)`` after a warm-up fit of at least
``WARM_STEPS`` steps (numba kernels compiled, batch-split worker processes started);
PyTorch runs a plain loop of zero_grad, forward, loss, backward, step on 2 threads.
Timed passes alternate hpnn / torch; the table shows median samples/s and their ratio.

    python benchmarks/families.py [--families resnet,vgg,...] [--repeats 3]
        [--batch-size 64] [--scale 1.0] [--json PATH]

Where the two cannot match weight for weight, the count is made comparable and said so:
PyTorch's LSTM has two biases per gate (``bias_ih`` and ``bias_hh``), Keras' one, so
torch's ``bias_hh`` is left out of its count; BatchNorm's moving mean and variance are
weights in Keras (counted by ``count_params``) and buffers in PyTorch (counted here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # hpnn from this checkout, installed or not

LEARNING_RATE = 1e-3
ADAM_EPSILON = 1e-7  # Keras' (and hpnn's) default; PyTorch's is 1e-8
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99  # Keras' BatchNormalization defaults
LN_EPSILON = 1e-3  # Keras' LayerNormalization default
TORCH_THREADS = 2  # the machine's 2 cores
WARM_STEPS = 32  # hpnn forks its batch-split workers after 20 split steps
SETTLE_S = 0.5  # untimed pause before each timed pass (BLAS / OpenMP threads spin down)
IMAGE = (32, 32, 3)

# Each family: samples in a timed pass (at batch 64, --scale 1), and its sizes at full
# and at tiny scale (the test's).
FAMILIES = {
    "resnet": {
        "samples": 3072,
        "full": {"filters": 32, "classes": 10},
        "tiny": {"filters": 4, "classes": 10, "image": (8, 8, 3)},
    },
    "vgg": {
        "samples": 3072,
        "full": {"widths": (64, 128), "dropout": 0.5, "classes": 10},
        "tiny": {"widths": (4, 8), "dropout": 0.5, "classes": 10, "image": (8, 8, 3)},
    },
    "textcnn": {
        "samples": 12288,
        "full": {"vocab": 10000, "dim": 64, "steps": 200, "filters": 128, "hidden": 64},
        "tiny": {"vocab": 50, "dim": 8, "steps": 12, "filters": 6, "hidden": 4},
    },
    "transformer": {
        "samples": 10240,
        "full": {"vocab": 10000, "steps": 128, "heads": 2, "key_dim": 32, "ff": 128},
        "tiny": {"vocab": 50, "steps": 8, "heads": 2, "key_dim": 4, "ff": 16},
    },
    "bilstm": {
        "samples": 12288,
        "full": {"vocab": 10000, "dim": 64, "steps": 100, "units": 64},
        "tiny": {"vocab": 50, "dim": 8, "steps": 6, "units": 4},
    },
    "autoencoder": {
        "samples": 131072,
        "full": {"sizes": (784, 256, 64)},
        "tiny": {"sizes": (20, 8, 4)},
    },
}


def log(msg: str) -> None:
    print(f"[families {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def config(family: str, tiny: bool = False) -> dict:
    return dict(FAMILIES[family]["tiny" if tiny else "full"])


# -- data (hpnn's layout: NHWC images, (batch, steps) ids) ----------------------------------
def make_data(family: str, cfg: dict, n: int, seed: int = 0):
    """``(x, y)`` for ``family``: float32 inputs or int64 ids, and hpnn-shaped targets."""
    rng = np.random.default_rng(seed)
    if family in ("resnet", "vgg"):
        x = rng.random((n, *cfg.get("image", IMAGE)), dtype=np.float32)
        return x, rng.integers(0, cfg["classes"], n)
    if family == "autoencoder":
        x = rng.random((n, cfg["sizes"][0]), dtype=np.float32)
        return x, x
    x = rng.integers(0, cfg["vocab"], (n, cfg["steps"]))
    if family == "transformer":
        return x, rng.integers(0, 2, n)
    return x, rng.integers(0, 2, (n, 1)).astype(np.float32)  # textcnn, bilstm: binary


def output_shape(family: str, cfg: dict, batch: int) -> tuple:
    if family in ("resnet", "vgg"):
        return (batch, cfg["classes"])
    if family == "transformer":
        return (batch, 2)
    if family == "autoencoder":
        return (batch, cfg["sizes"][0])
    return (batch, 1)


# -- hpnn -------------------------------------------------------------------------------------
def _hpnn_token_and_position():
    from hpnn import layers

    class TokenAndPosition(layers.Layer):
        """Keras' example layer: token embedding plus a learned position embedding."""

        def __init__(self, maxlen, vocab, dim, **kwargs):
            super().__init__(**kwargs)
            self.token = layers.Embedding(vocab, dim)
            self.position = layers.Embedding(maxlen, dim)

        def call(self, x, training=False):
            return self.token(x) + self.position(np.arange(x.shape[-1]))

        def compute_output_shape(self, input_shape):
            return (*input_shape, self.token.output_dim)

    return TokenAndPosition


def _hpnn_resnet(cfg):
    import hpnn
    from hpnn import layers

    f = cfg["filters"]

    def conv_bn(h, filters, strides=1, relu=True):
        h = layers.Conv2D(filters, 3, strides=strides, padding="same")(h)
        h = layers.BatchNormalization()(h)
        return layers.ReLU()(h) if relu else h

    def block(h, filters, strides=1):
        out = conv_bn(conv_bn(h, filters, strides), filters, relu=False)
        if strides != 1 or h.shape[-1] != filters:
            h = layers.Conv2D(filters, 1, strides=strides)(h)  # 1x1 projection
        return layers.ReLU()(layers.Add()([out, h]))

    inputs = hpnn.Input(shape=cfg.get("image", IMAGE))
    h = conv_bn(inputs, f)
    h = block(h, f)
    h = block(h, 2 * f, strides=2)
    h = block(h, 2 * f)
    h = layers.GlobalAveragePooling2D()(h)
    return hpnn.Model(inputs, layers.Dense(cfg["classes"], activation="softmax")(h))


def _hpnn_vgg(cfg):
    import hpnn
    from hpnn import layers

    stack = [hpnn.Input(shape=cfg.get("image", IMAGE))]
    for w in cfg["widths"]:
        stack += [
            layers.Conv2D(w, 3, padding="same", activation="relu"),
            layers.Conv2D(w, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
        ]
    stack += [
        layers.Flatten(),
        layers.Dropout(cfg["dropout"]),
        layers.Dense(cfg["classes"], activation="softmax"),
    ]
    return hpnn.Sequential(stack)


def _hpnn_textcnn(cfg):
    import hpnn
    from hpnn import layers

    return hpnn.Sequential(
        [
            hpnn.Input(shape=(cfg["steps"],), dtype="int64"),
            layers.Embedding(cfg["vocab"], cfg["dim"]),
            layers.Conv1D(cfg["filters"], 5, activation="relu"),
            layers.GlobalMaxPooling1D(),
            layers.Dense(cfg["hidden"], activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )


def _hpnn_transformer(cfg):
    import hpnn
    from hpnn import layers

    dim = cfg["heads"] * cfg["key_dim"]  # torch's MultiheadAttention needs heads*key_dim == dim
    inputs = hpnn.Input(shape=(cfg["steps"],), dtype="int64")
    h = _hpnn_token_and_position()(cfg["steps"], cfg["vocab"], dim)(inputs)
    att = layers.MultiHeadAttention(num_heads=cfg["heads"], key_dim=cfg["key_dim"])(h, h)
    h = layers.LayerNormalization()(layers.Add()([h, att]))
    ff = layers.Dense(dim)(layers.Dense(cfg["ff"], activation="relu")(h))
    h = layers.LayerNormalization()(layers.Add()([h, ff]))
    h = layers.GlobalAveragePooling1D()(h)
    return hpnn.Model(inputs, layers.Dense(2, activation="softmax")(h))


def _hpnn_bilstm(cfg):
    import hpnn
    from hpnn import layers

    return hpnn.Sequential(
        [
            hpnn.Input(shape=(cfg["steps"],), dtype="int64"),
            layers.Embedding(cfg["vocab"], cfg["dim"]),
            layers.Bidirectional(layers.LSTM(cfg["units"])),
            layers.Dense(1, activation="sigmoid"),
        ]
    )


def _hpnn_autoencoder(cfg):
    import hpnn
    from hpnn import layers

    d, h, z = cfg["sizes"]
    return hpnn.Sequential(
        [
            hpnn.Input(shape=(d,)),
            layers.Dense(h, activation="relu"),
            layers.Dense(z, activation="relu"),
            layers.Dense(h, activation="relu"),
            layers.Dense(d, activation="sigmoid"),
        ]
    )


HPNN_LOSS = {
    "resnet": "sparse_categorical_crossentropy",
    "vgg": "sparse_categorical_crossentropy",
    "textcnn": "binary_crossentropy",
    "transformer": "sparse_categorical_crossentropy",
    "bilstm": "binary_crossentropy",
    "autoencoder": "mse",
}


def build_hpnn(family: str, cfg: dict, seed: int = 0):
    import hpnn

    hpnn.utils.set_random_seed(seed)
    model = globals()[f"_hpnn_{family}"](cfg)
    model.compile(
        optimizer=hpnn.optimizers.Adam(learning_rate=LEARNING_RATE, epsilon=ADAM_EPSILON),
        loss=HPNN_LOSS[family],
    )
    return model


def hpnn_fit(model, x, y, batch: int) -> int:
    """One epoch of ``model.fit`` in order; returns the samples it trained on."""
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return len(x)


# -- PyTorch (eager; NCHW images) --------------------------------------------------------------
def _torch_modules():
    import torch
    from torch import nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=BN_EPSILON, momentum=1 - BN_MOMENTUM)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, padding=1),
                bn(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                bn(cout),
            )
            self.proj = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

        def forward(self, x):
            skip = x if self.proj is None else self.proj(x)
            return torch.relu(self.body(x) + skip)

    class ResNet(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            f, c = cfg["filters"], cfg.get("image", IMAGE)[-1]
            self.net = nn.Sequential(
                nn.Conv2d(c, f, 3, padding=1),
                bn(f),
                nn.ReLU(),
                Block(f, f),
                Block(f, 2 * f, 2),
                Block(2 * f, 2 * f),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(2 * f, cfg["classes"]),
            )

        def forward(self, x):
            return self.net(x)

    class TextCNN(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.emb = nn.Embedding(cfg["vocab"], cfg["dim"])
            self.conv = nn.Conv1d(cfg["dim"], cfg["filters"], 5)
            self.fc1 = nn.Linear(cfg["filters"], cfg["hidden"])
            self.fc2 = nn.Linear(cfg["hidden"], 1)

        def forward(self, ids):
            h = torch.relu(self.conv(self.emb(ids).transpose(1, 2)))  # (B, filters, steps-4)
            return self.fc2(torch.relu(self.fc1(h.amax(dim=2))))

    class Transformer(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            dim = cfg["heads"] * cfg["key_dim"]
            self.token = nn.Embedding(cfg["vocab"], dim)
            self.position = nn.Embedding(cfg["steps"], dim)
            self.att = nn.MultiheadAttention(dim, cfg["heads"], batch_first=True)
            self.ln1 = nn.LayerNorm(dim, eps=LN_EPSILON)
            self.ff = nn.Sequential(nn.Linear(dim, cfg["ff"]), nn.ReLU(), nn.Linear(cfg["ff"], dim))
            self.ln2 = nn.LayerNorm(dim, eps=LN_EPSILON)
            self.out = nn.Linear(dim, 2)
            self.register_buffer("steps", torch.arange(cfg["steps"]), persistent=False)

        def forward(self, ids):
            h = self.token(ids) + self.position(self.steps)
            h = self.ln1(h + self.att(h, h, h, need_weights=False)[0])
            h = self.ln2(h + self.ff(h))
            return self.out(h.mean(dim=1))

    class BiLSTM(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.emb = nn.Embedding(cfg["vocab"], cfg["dim"])
            self.lstm = nn.LSTM(cfg["dim"], cfg["units"], batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * cfg["units"], 1)

        def forward(self, ids):
            _, (h_n, _) = self.lstm(self.emb(ids))  # h_n: (2, B, units), forward then backward
            return self.out(torch.cat([h_n[0], h_n[1]], dim=1))

    return {"resnet": ResNet, "textcnn": TextCNN, "transformer": Transformer, "bilstm": BiLSTM}


def _torch_vgg(cfg):
    from torch import nn

    c = cfg.get("image", IMAGE)
    mods, cin = [], c[-1]
    for w in cfg["widths"]:
        mods += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1)]
        mods += [nn.ReLU(), nn.MaxPool2d(2)]
        cin = w
    side = c[0] // 2 ** len(cfg["widths"])
    # NCHW flattens channel-major where Keras' NHWC flattens channel-minor: same count,
    # a permuted Dense kernel, the same arithmetic.
    mods += [nn.Flatten(), nn.Dropout(cfg["dropout"]), nn.Linear(cin * side * side, cfg["classes"])]
    return nn.Sequential(*mods)


def _torch_autoencoder(cfg):
    from torch import nn

    d, h, z = cfg["sizes"]
    return nn.Sequential(
        nn.Linear(d, h),
        nn.ReLU(),
        nn.Linear(h, z),
        nn.ReLU(),
        nn.Linear(z, h),
        nn.ReLU(),
        nn.Linear(h, d),
        nn.Sigmoid(),
    )


def _torch_loss(family: str):
    from torch.nn import functional

    if family in ("resnet", "vgg", "transformer"):
        return functional.cross_entropy  # logits: hpnn fuses softmax + cross-entropy too
    if family == "autoencoder":
        return functional.mse_loss
    return functional.binary_cross_entropy_with_logits  # hpnn's sigmoid + BCE reads the logits too


def build_torch(family: str, cfg: dict, seed: int = 0):
    """``(net, optimizer, loss_fn)``; the net in training mode."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(seed)
    if family == "vgg":
        net = _torch_vgg(cfg)
    elif family == "autoencoder":
        net = _torch_autoencoder(cfg)
    else:
        net = _torch_modules()[family](cfg)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON)
    return net, opt, _torch_loss(family)


def torch_batches(family: str, x, y, batch: int):
    """hpnn-layout arrays as a list of torch ``(x, y)`` batches (whole batches only)."""
    import torch

    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.from_numpy(np.ascontiguousarray(y))
    if family in ("resnet", "vgg", "transformer"):
        yt = yt.long()
    n = len(xt) // batch * batch
    return [(xt[i : i + batch], yt[i : i + batch]) for i in range(0, n, batch)]


def torch_train(net, opt, loss_fn, batches) -> int:
    """One pass of the plain loop; returns the samples it trained on."""
    for xb, yb in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        loss.item()  # as hpnn's fit, which reads every step's loss
    return sum(len(xb) for xb, _ in batches)


def torch_param_count(net) -> tuple[int, int]:
    """``(raw, keras_equivalent)``: torch's parameter count, and the same counted as Keras
    would: BatchNorm running statistics in, the LSTM's second bias (``bias_hh``) out."""
    raw = sum(p.numel() for p in net.parameters())
    extra = sum(
        b.numel() for n, b in net.named_buffers() if n.rsplit(".", 1)[-1].startswith("running_")
    )
    redundant = sum(p.numel() for n, p in net.named_parameters() if ".bias_hh_" in f".{n}")
    return raw, raw + extra - redundant


# -- measurement -------------------------------------------------------------------------------
_HZ = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """CPU seconds all processes have run (user+nice+system+irq+softirq), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
    except (OSError, ValueError):
        return float("nan")
    return (user + nice + system + irq + softirq) / _HZ


def _own_seconds() -> dict:
    """CPU seconds of this process (key 0) and of each live child (hpnn's workers), by pid."""
    seconds = {0: time.process_time()}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return seconds
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids = f.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds[int(pid)] = (int(fields[11]) + int(fields[12])) / _HZ  # utime, stime
    return seconds


def timed(run_pass) -> tuple[int, float, float, float]:
    """``(samples, seconds, own_cores, other_cores)``: the cores this process and its
    worker processes kept busy over the pass, and the cores everything else did."""
    t, busy, own = time.perf_counter(), _busy_seconds(), _own_seconds()
    n = run_pass()
    wall = time.perf_counter() - t
    after = _own_seconds()  # children that exited meanwhile drop out of both ends
    mine = sum(v - own.get(pid, 0.0) for pid, v in after.items())
    return n, wall, mine / wall, max(0.0, _busy_seconds() - busy - mine) / wall


@dataclass
class Pair:
    family: str
    n: int
    hpnn_pass: Callable[[], int]
    torch_pass: Callable[[], int]
    params: dict = field(default_factory=dict)


def setup(family: str, batch: int, samples: int, tiny: bool = False, warm: bool = True) -> Pair:
    cfg = config(family, tiny)
    n = max(1, samples // batch) * batch
    x, y = make_data(family, cfg, n)
    model = build_hpnn(family, cfg)
    net, opt, loss_fn = build_torch(family, cfg)
    hp = model.count_params()
    raw, tp = torch_param_count(net)
    params = {"hpnn": hp, "torch": tp, "torch_raw": raw}
    if hp != tp:
        raise AssertionError(f"{family}: hpnn has {hp:,} parameters, torch {tp:,} (raw {raw:,})")
    batches = torch_batches(family, x, y, batch)
    if warm:
        steps = max(WARM_STEPS, 1)
        reps = -(-steps * batch // n)
        wx, wy = (np.concatenate([a] * reps)[: steps * batch] for a in (x, y))
        t = time.perf_counter()
        hpnn_fit(model, wx, wy, batch)
        log(f"{family}: hpnn warm-up fit ({steps} steps) {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        torch_train(net, opt, loss_fn, batches[: min(len(batches), 8)])
        log(f"{family}: torch warm-up (8 steps) {time.perf_counter() - t:.1f} s")
    return Pair(
        family,
        n,
        lambda: hpnn_fit(model, x, y, batch),
        lambda: torch_train(net, opt, loss_fn, batches),
        params,
    )


def measure(family: str, batch: int, samples: int, repeats: int) -> dict:
    pair = setup(family, batch, samples)
    p = pair.params
    log(
        f"{family}: parameters hpnn {p['hpnn']:,} = torch {p['torch']:,} "
        f"(torch raw {p['torch_raw']:,})"
    )
    rates = {"hpnn": [], "torch": []}
    cores = {"hpnn": [], "torch": []}
    others = {"hpnn": [], "torch": []}
    for r in range(repeats):
        for fw, run_pass in (("hpnn", pair.hpnn_pass), ("torch", pair.torch_pass)):
            time.sleep(SETTLE_S)
            n, wall, own, other = timed(run_pass)
            rates[fw].append(n / wall)
            cores[fw].append(own)
            others[fw].append(other)
        log(
            f"{family}: repeat {r + 1}/{repeats}: {pair.n} samples; "
            + "; ".join(
                f"{fw} {rates[fw][-1]:.0f}/s ({pair.n / rates[fw][-1]:.1f} s, cores "
                f"{cores[fw][-1]:.2f}, others {others[fw][-1]:.2f})"
                for fw in rates
            )
        )
    med = {fw: statistics.median(v) for fw, v in rates.items()}
    return {
        "samples": pair.n,
        "params": p,
        **{
            fw: {
                "median": med[fw],
                "values": rates[fw],
                "cores": cores[fw],
                "other_cores": others[fw],
            }
            for fw in rates
        },
        "ratio": med["hpnn"] / med["torch"],
    }


def print_table(results: dict) -> None:
    """The table: ``ratio`` of the medians, ``best`` of the fastest passes (the least
    disturbed), ``spread`` from slowest hpnn / fastest torch to fastest / slowest, and
    ``others`` the most cores anything else on the machine kept busy during one of the
    family's timed passes (above ~0.2 the numbers are noisy: PyTorch's two OpenMP
    threads slow down far more than hpnn when a core is taken)."""
    print(
        f"{'family':<12} {'samples':>7} {'params':>10} {'hpnn/s':>9} {'torch/s':>9} "
        f"{'ratio':>6} {'best':>5} {'spread':>11} {'others':>6}"
    )
    for fam, r in results.items():
        h, t = r["hpnn"]["values"], r["torch"]["values"]
        spread = f"{min(h) / max(t):.2f}-{max(h) / min(t):.2f}"
        others = max(r["hpnn"]["other_cores"] + r["torch"]["other_cores"])
        print(
            f"{fam:<12} {r['samples']:>7} {r['params']['hpnn']:>10,} {r['hpnn']['median']:>9.0f} "
            f"{r['torch']['median']:>9.0f} {r['ratio']:>6.2f} {max(h) / max(t):>5.2f} "
            f"{spread:>11} {others:>6.2f}"
        )
    ratios = [r["ratio"] for r in results.values()]
    if ratios:
        print(
            f"median ratio hpnn/torch over {len(ratios)} families: {statistics.median(ratios):.2f}"
        )


def _git_state() -> str:
    """The commit hpnn runs from, and whether hpnn/ has uncommitted edits."""
    import subprocess

    def git(*cmd):
        return subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=ROOT).stdout

    try:
        head, dirty = (
            git("rev-parse", "--short", "HEAD").strip(),
            git("status", "--porcelain", "hpnn"),
        )
    except OSError:
        return "unknown"
    n = len(dirty.splitlines())
    return (head or "unknown") + (f" + uncommitted edits in {n} hpnn file(s)" if n else "")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per framework")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every pass's samples")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    args.families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(args.families) - set(FAMILIES))
    if unknown:
        p.error(f"--families: unknown {unknown}; expected some of {','.join(FAMILIES)}")
    if args.repeats < 1 or args.batch_size < 1 or args.scale <= 0:
        p.error("--repeats and --batch-size must be >= 1, --scale > 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    import hpnn
    import hpnn.engine.kernels

    hpnn.engine.kernels.warm_up()
    torch.set_num_threads(TORCH_THREADS)
    header = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "hpnn": hpnn.__version__,
        "git": _git_state(),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "load_start": os.getloadavg(),
    }
    log(f"hpnn at {header['git']}; load average at start {header['load_start']}")
    results = {}
    for fam in args.families:
        # samples scale with the batch so the step count stays that of batch 64
        samples = int(FAMILIES[fam]["samples"] * args.scale * max(1.0, args.batch_size / 64))
        results[fam] = measure(fam, args.batch_size, samples, args.repeats)
    header["load_end"] = os.getloadavg()
    print_table(results)
    print(f"load average {header['load_start']} -> {header['load_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "families": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
