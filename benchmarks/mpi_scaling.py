"""Data-parallel scaling on one machine: 2 MPI ranks x 1 BLAS thread against
1 process x 2 BLAS threads, at the same global batch, for the reference CNN and
the MLP.

    python benchmarks/mpi_scaling.py [--samples 8192] [--global-batch 128] [--repeats 3]
                                     [--models cnn mlp]

Each configuration runs in fresh processes (``mpiexec -n 2 python -m mpi4py`` for
the ranks) and trains one untimed warm-up epoch, then timed epochs through
``model.fit`` on a fixed random data set. Throughput counts samples of the whole
job per wall second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(model_name, samples, per_rank_batch, epochs):
    import numpy as np

    import hpnn
    import hpnn.distributed as dist
    from hpnn.cli import build_model

    comm = dist.get_comm()
    hpnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    model = build_model(model_name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=per_rank_batch, verbose=0)  # warm-up
    if comm is not None:
        comm.barrier()
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=per_rank_batch, verbose=0)
    if comm is not None:
        comm.barrier()
    seconds = time.perf_counter() - start
    if dist.is_chief():
        print(json.dumps({"samples_per_s": samples * epochs / seconds}))


def run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--global-batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", choices=("cnn", "mlp"), default=["cnn", "mlp"])
    p.add_argument("--worker", nargs=4, metavar=("MODEL", "SAMPLES", "BATCH", "EPOCHS"))
    args = p.parse_args()
    if args.worker:
        m, n, b, e = args.worker
        return worker(m, int(n), int(b), int(e))
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("mpiexec not found: pip install 'hpnn[mpi]'")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    me = str(Path(__file__).resolve())
    print(
        f"{'model':<6} {'global batch':>12} {'1 proc x 2 thr':>15} {'2 ranks x 1 thr':>16} "
        f"{'ratio':>6}   (samples/s, median of {args.repeats})"
    )
    for model in args.models:
        g, n, e = str(args.global_batch), str(args.samples), str(args.epochs)
        single, ranks = [], []
        for _ in range(args.repeats):  # alternate, so drift hits both
            single.append(
                run(
                    [sys.executable, me, "--worker", model, n, g, e],
                    dict(env, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2"),
                )
            )
            half = str(args.global_batch // 2)
            ranks.append(
                run(
                    [
                        mpiexec,
                        "-n",
                        "2",
                        sys.executable,
                        "-m",
                        "mpi4py",
                        me,
                        "--worker",
                        model,
                        n,
                        half,
                        e,
                    ],
                    env,
                )
            )
        s, r = statistics.median(single), statistics.median(ranks)
        print(
            f"{model:<6} {args.global_batch:>12} {s:>15,.0f} {r:>16,.0f} {r / s:>6.2f}", flush=True
        )


if __name__ == "__main__":
    sys.exit(main())
