"""How much two parts of a batch split slow each other down: one part's training
step alone, two parts at once in two threads of one process (as the batch split
runs them), and two parts at once in two processes.

    python benchmarks/split_contention.py [--batch 64] [--steps 100] [--rounds 3]

Each part is the reference CNN's ``train_step`` on its own model and ``--batch``
samples, with single-threaded BLAS and the batch split off. Prints ms per step
for each arrangement, round by round (alternated, so drift hits all three), and
the voluntary context switches per step of the threaded run (waits for the GIL).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _models(batch: int):
    import numpy as np

    from hpnn.cli import build_model

    rng = np.random.default_rng(0)
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    models = [build_model("cnn") for _ in range(2)]
    for m in models:
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for _ in range(10):
            m.train_step(x, y)
    return models, x, y


def worker(mode: str, batch: int, steps: int, start_at: float) -> dict:
    import resource
    import threading

    from threadpoolctl import threadpool_limits

    from hpnn.engine import kernels

    threadpool_limits(1, user_api="blas")
    kernels.warm_up()
    models, x, y = _models(batch)

    def loop(m):
        for _ in range(steps):
            m.train_step(x, y)

    if mode == "threads":  # warm the second thread's allocations too
        t = threading.Thread(target=loop, args=(models[1],))
        t.start()
        loop(models[0])
        t.join()
    time.sleep(max(0.0, start_at - time.time()))
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if mode == "threads":
        t = threading.Thread(target=loop, args=(models[1],))
        t.start()
        loop(models[0])
        t.join()
    else:
        loop(models[0])
    seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"ms": seconds / steps * 1e3, "switches": (r1.ru_nvcsw - r0.ru_nvcsw) / steps}


def _spawn(mode, batch, steps, start_at):
    cmd = [sys.executable, __file__, "--worker", mode, str(batch), str(steps), str(start_at)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HPNN_BATCH_THREADS="0")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def _result(proc) -> dict:
    out, _ = proc.communicate(timeout=600)
    if proc.returncode:
        sys.exit(f"split_contention: a worker failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", nargs=4, metavar=("MODE", "BATCH", "STEPS", "START"))
    args = p.parse_args()
    if args.worker:
        mode, batch, steps, start = args.worker
        print(json.dumps(worker(mode, int(batch), int(steps), float(start))))
        return
    print(f"reference CNN train_step, {args.batch} samples a part, 1 BLAS thread; ms a step")
    print(f"{'round':>5} {'alone':>7} {'2 threads':>10} {'2 processes':>12} {'switches/step':>14}")
    for r in range(args.rounds):
        # The workers start timing together, a few seconds from now (after imports).
        alone = _result(_spawn("alone", args.batch, args.steps, time.time() + 4))
        threaded = _result(_spawn("threads", args.batch, args.steps, time.time() + 4))
        start = time.time() + 5
        procs = [_spawn("alone", args.batch, args.steps, start) for _ in range(2)]
        both = [_result(q)["ms"] for q in procs]
        print(
            f"{r + 1:>5} {alone['ms']:>7.2f} {threaded['ms']:>10.2f} "
            f"{max(both):>12.2f} {threaded['switches']:>14.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
