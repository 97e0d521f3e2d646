"""Runs PyTorch passes on request, in a process that never imports hpnn (bench.py's
``torch-stock`` column): ``python stock_server.py WORKLOAD SAMPLES SEED``, then one
line ``pass`` on stdin per timed pass; each answer is ``<samples> <cpu seconds>``."""

from __future__ import annotations

import sys
import time

from workloads import make_data, setup_torch


def main(workload: str, samples: int, seed: int) -> None:
    if "hpnn" in sys.modules:
        raise RuntimeError("the stock PyTorch child must not import hpnn")
    x, labels = make_data(samples)
    job = setup_torch(workload, x, labels, seed=seed)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "pass":
            raise ValueError(f"expected 'pass'. Received: {line!r}")
        cpu = time.process_time()
        n = job.run_pass()
        print(n, time.process_time() - cpu, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
