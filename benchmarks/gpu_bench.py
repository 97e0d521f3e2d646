"""hpnn on CuPy against PyTorch on CUDA, same GPU, same process, alternating.

Trains the reference CNN (batch 128), the MLP 784-512-512-10 (batch 128) and an
LSTM(128) on 28x28 sequences (batch 128) for a fixed number of steps each, with
``loss.item()`` every step in both frameworks (so each step is synchronised), and
prints samples/s and hpnn/torch. Run by ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import hpnn
from hpnn import backend, layers
from hpnn.cli import build_model

STEPS, REPEATS, BATCH = 40, 5, 128


def hpnn_job(name):
    backend.set_backend("cupy")
    hpnn.utils.set_random_seed(0)
    if name == "lstm":
        model = hpnn.Sequential(
            [hpnn.Input(shape=(28, 28)), layers.LSTM(128), layers.Dense(10, activation="softmax")]
        )
    else:
        model = build_model(name)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    shape = (BATCH, 28, 28) if name == "lstm" else (BATCH, 28, 28, 1)
    x = rng.random(shape, dtype=np.float32)
    y = hpnn.utils.to_categorical(rng.integers(0, 10, BATCH), 10)
    model._make_metrics(y.shape)

    def run():
        for _ in range(STEPS):
            model.train_step(x, y)

    return run


def torch_job(name):
    import torch
    import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling
    from torch import nn

    dev = torch.device("cuda")
    torch.manual_seed(0)
    if name == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(800, 10),
        )
        x = torch.rand(BATCH, 1, 28, 28, device=dev)
    elif name == "mlp":
        net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )
        x = torch.rand(BATCH, 1, 28, 28, device=dev)
    else:

        class LSTMNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(28, 128, batch_first=True)
                self.fc = nn.Linear(128, 10)

            def forward(self, x):
                return self.fc(self.lstm(x)[0][:, -1])

        net = LSTMNet()
        x = torch.rand(BATCH, 28, 28, device=dev)
    net = net.to(dev)
    y = torch.randint(0, 10, (BATCH,), device=dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def run():
        for _ in range(STEPS):
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            loss.item()

    return run


def main():
    try:
        import torch

        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    print(f"hpnn {hpnn.__version__}; {'torch ' + torch.__version__ if have_torch else 'no torch'}")
    print(f"{'workload':<22}| {'hpnn samples/s':>15} | {'torch samples/s':>15} | hpnn/torch")
    for name in ("cnn", "mlp", "lstm"):
        jobs = {"hpnn": hpnn_job(name)}
        if have_torch:
            jobs["torch"] = torch_job(name)
        rates = {k: [] for k in jobs}
        for run in jobs.values():  # warm-up: kernels compiled, memory pools filled
            run()
        for _ in range(REPEATS):
            for k, run in jobs.items():
                if k == "torch":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                run()
                rates[k].append(STEPS * BATCH / (time.perf_counter() - t))
        h = statistics.median(rates["hpnn"])
        t = statistics.median(rates["torch"]) if have_torch else float("nan")
        print(f"{name + ' train b128':<22}| {h:>15,.0f} | {t:>15,.0f} | {h / t:.2f}", flush=True)
    backend.set_backend("numpy")


if __name__ == "__main__":
    sys.exit(main())
