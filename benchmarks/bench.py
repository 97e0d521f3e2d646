"""hpnn against PyTorch eager (and JAX jit when installed), in one process, on this machine.

Measures training and inference samples/s (frameworks alternated repeat by repeat so
that drift hits both), peak memory of a training run (one fresh subprocess per
framework), cold start to the end of the first training step, and the machine's
float32 matmul GFLOP/s as the ceiling for the CNN's arithmetic. Reports numbers and
ratios; asserts nothing about them.

    python benchmarks/bench.py [--quick] [--repeats N] [--only cnn32,cnn128,mlp128] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from report import fmt_rate, print_report
from workloads import (
    COLD_START,
    RECURRENT,
    SETUPS,
    TORCH_THREADS,
    WORKLOADS,
    hpnn_forward_macs,
    jax_available,
    make_data,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # hpnn from this checkout, installed or not
EXTRAS = ("fit32", "memory", "cold")
# Columns measured in a child process per pass; their memory and cold start are torch's.
CHILD_ONLY = ("torch-stock",)
# Untimed pause before each timed pass: OpenBLAS and OpenMP worker threads spin for a while
# after their last call, and would steal the 2 cores from the next framework's pass.
SETTLE_S = 0.5
ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env() -> dict:
    env = dict(os.environ)  # OPENBLAS_* and friends pass through unchanged
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


def summarize(values) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


# -- machine -------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> str:
    """The commit hpnn runs from, and whether hpnn/ has uncommitted edits (timed as they are)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "hpnn"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        return "unknown"
    if not head:
        return "unknown"
    return head + (
        f" + uncommitted edits in {len(dirty.splitlines())} hpnn file(s)" if dirty else ""
    )


def blas_info(frameworks) -> dict:
    """threadpoolctl's view of numpy's BLAS and of torch's thread pools."""
    from threadpoolctl import threadpool_info

    numpy_libs = threadpool_info()  # only numpy is loaded at this point
    info = {"numpy": numpy_libs}
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(TORCH_THREADS)  # as setup_torch does
        seen = {lib["filepath"] for lib in numpy_libs}
        info["torch"] = [lib for lib in threadpool_info() if lib["filepath"] not in seen]
        config = torch.__config__.show()
        blas = next((p for p in config.replace(",", "\n").split() if p.startswith("BLAS_INFO")), "")
        mkl = [ln.strip() for ln in torch.__config__.parallel_info().splitlines() if "mkl_" in ln]
        info["torch_runtime"] = {
            "version": torch.__version__,
            "blas": blas.split("=", 1)[-1] or "unknown",
            "mkl_threads": mkl[0] if mkl else "n/a",
            "num_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
        }
    return info


def matmul_gflops(repeats: int = 5, n: int = 2048) -> dict:
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: thread start, page faults
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return summarize(rates)


# -- timing in this process ----------------------------------------------------------------
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def system_busy_seconds() -> float:
    """CPU seconds all processes have run (user+nice+system+irq+softirq), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:8]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / _HZ


class CpuMeter:
    """Cores this process used, and cores everything else used, over a timed interval."""

    def __enter__(self):
        self.t, self.own, self.all = time.perf_counter(), time.process_time(), system_busy_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t
        own = time.process_time() - self.own
        self.self_cores = own / self.wall
        self.other_cores = max(0.0, system_busy_seconds() - self.all - own) / self.wall


def twins(workload, frameworks) -> list[str]:
    """The frameworks that have ``workload`` (the recurrent ones have no JAX twin)."""
    if WORKLOADS[workload][0] in RECURRENT:
        return [fw for fw in frameworks if fw != "jax"]
    return list(frameworks)


def measure_workload(workload, frameworks, x, labels, repeats, want_fit) -> dict:
    """Warm up every framework once, then time passes alternating framework by framework."""
    jobs = {}
    frameworks = twins(workload, frameworks)
    for fw in frameworks:
        log(f"{workload}: setting up {fw}")
        jobs[fw] = SETUPS[fw](workload, x, labels)
    for fw, job in jobs.items():
        t = time.perf_counter()
        job.run_pass()
        log(f"{workload}: {fw} warm-up pass {time.perf_counter() - t:.1f} s")
    rates = {fw: [] for fw in frameworks}
    cpu = {fw: {"self": [], "others": []} for fw in frameworks}
    for r in range(repeats):
        for fw, job in jobs.items():
            time.sleep(SETTLE_S)
            with CpuMeter() as meter:
                n = job.run_pass()
            rates[fw].append(n / meter.wall)
            own, others = meter.self_cores, meter.other_cores
            if "child_cpu" in job.extra:  # the pass ran in a child: its CPU is the job's own
                own = job.extra["child_cpu"]() / meter.wall
                others = max(0.0, others - own)
            cpu[fw]["self"].append(own)
            cpu[fw]["others"].append(others)
        log(
            f"{workload}: repeat {r + 1}/{repeats}: "
            + ", ".join(
                f"{fw} {fmt_rate(v[-1])}/s (cores self {cpu[fw]['self'][-1]:.2f}, "
                f"others {cpu[fw]['others'][-1]:.2f})"
                for fw, v in rates.items()
            )
        )
    result = {fw: summarize(v) | {"cores": cpu[fw]} for fw, v in rates.items()}
    if want_fit and "fit" in jobs["hpnn"].extra:
        time.sleep(SETTLE_S)
        t = time.perf_counter()
        n = jobs["hpnn"].extra["fit"]()
        result["hpnn_fit"] = n / (time.perf_counter() - t)
        log(f"{workload}: hpnn model.fit {fmt_rate(result['hpnn_fit'])}/s")
    for job in jobs.values():
        job.extra.get("close", lambda: None)()
    del jobs
    gc.collect()
    return result


# -- memory: one fresh subprocess per framework and workload ------------------------------------
def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def vm_hwm_mib() -> float | None:
    """The kernel's per-address-space peak (not carried over from the parent), for a cross-check."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _proc_kib(pid, name: str, key: str) -> float | None:
    """A ``key: N kB`` line of /proc/PID/NAME, in MiB (None where /proc has none)."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _worker_pids(job) -> list[int]:
    """hpnn's batch-split worker processes (hpnn.parallel.workers) of this job's model."""
    model = job.extra.get("model") if job.extra else None
    slot = vars(model).get("_part_pool") if model is not None else None
    pool = slot.pool if slot is not None else None
    return [w.pid for w in pool.workers] if pool is not None else []


def memory_child(framework: str, workload: str, samples: int, inherited: float) -> None:
    marks = {"inherited": inherited}
    x, labels = make_data(samples)
    job = SETUPS[framework](
        workload, x, labels, on_ready=lambda: marks.setdefault("baseline", max_rss_mib())
    )
    job.run_pass()
    marks["after_warmup"] = max_rss_mib()
    t = time.perf_counter()
    n = job.run_pass()
    marks["rate"] = n / (time.perf_counter() - t)
    marks["peak"] = max_rss_mib()
    marks["vm_hwm"] = vm_hwm_mib()
    # Worker processes (hpnn's batch split): their own peaks, and every process's
    # proportional share (PSS: pages shared after the fork counted once in all) now.
    workers = _worker_pids(job)
    marks["workers"] = len(workers)
    marks["workers_peak"] = sum(_proc_kib(p, "status", "VmHWM") or 0 for p in workers)
    pss = [_proc_kib(p, "smaps_rollup", "Pss") for p in ["self", *workers]]
    marks["pss"] = sum(pss) if None not in pss else None
    print(json.dumps(marks))


def measure_memory(framework: str, workload: str, samples: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--samples", str(samples)]
    cmd += ["--_memory-child", f"{framework}:{workload}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=ROOT)
    if proc.returncode != 0:
        log(f"memory child {framework}:{workload} failed:\n{proc.stderr[-2000:]}")
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"}
    marks = json.loads(proc.stdout.strip().splitlines()[-1])
    marks["delta"] = marks["peak"] - marks["baseline"]
    return marks


# -- cold start ------------------------------------------------------------------------------
def cold_start_once(framework: str) -> float:
    """Seconds from spawning `python -c ...` to its line saying the first step has ended."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", COLD_START[framework]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    seconds = time.perf_counter() - t
    _, err = proc.communicate()
    if proc.returncode != 0 or "step done" not in line:
        raise RuntimeError(f"cold start of {framework} failed: {err.strip()[-500:]}")
    return seconds


def measure_cold_start(frameworks, repeats) -> dict:
    times = {fw: [] for fw in frameworks}
    for _ in range(repeats):
        for fw in frameworks:
            times[fw].append(cold_start_once(fw))
    return {fw: summarize(v) for fw, v in times.items()}


# -- main ------------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer samples and repeats (smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="timed passes (default 5; quick 3)")
    names = ",".join((*WORKLOADS, *EXTRAS))
    p.add_argument("--only", default=None, help=f"comma-separated subset of: {names}")
    p.add_argument("--json", default=None, help="also write all numbers to this file")
    p.add_argument(
        "--families",
        action="store_true",
        help="then run benchmarks/families.py too: six more model families, fit against "
        "PyTorch eager (about 5 more minutes; its JSON beside --json's, .families.json)",
    )
    p.add_argument("--samples", type=int, default=None, help="data set size (default 4096)")
    p.add_argument("--memory-samples", type=int, default=None, help="(default 4096; quick 256)")
    p.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.samples = args.samples or (512 if args.quick else 4096)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.memory_samples = args.memory_samples or (256 if args.quick else 4096)
    selected = args.only.split(",") if args.only else [*WORKLOADS, *EXTRAS]
    unknown = sorted(set(selected) - set(WORKLOADS) - set(EXTRAS))
    if unknown:
        p.error(f"--only: unknown name(s) {unknown}; expected some of {names}")
    args.selected = selected
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1. Received: {args.repeats}")
    return args


def run_memory(args, frameworks) -> dict:
    memory = {}
    for wl, (_, _, kind) in WORKLOADS.items():
        if wl in args.selected and kind == "train":
            for fw in twins(wl, frameworks):
                if fw in CHILD_ONLY:
                    continue  # torch's own child process is the stock one already
                log(f"memory: {fw} {wl} in a fresh process")
                memory.setdefault(wl, {})[fw] = measure_memory(fw, wl, args.memory_samples)
    return memory


def run(args) -> tuple[dict, list[str]]:
    start = time.perf_counter()
    load_start = os.getloadavg()
    frameworks = ["hpnn", "torch", "torch-stock"]
    has_jax = jax_available()
    if has_jax:
        frameworks.append("jax")
    log(f"load average at start {load_start}; frameworks {frameworks}")
    res = {"speed": {}, "memory": {}, "memory_samples": args.memory_samples}
    # Memory first, while this process is small: on Linux a child's ru_maxrss starts at
    # its parent's peak RSS (kept across fork and exec), so a parent that had loaded
    # torch would hide every child's own peak below its own.
    if "memory" in args.selected:
        res["memory"] = run_memory(args, frameworks)
    import hpnn

    header = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "hpnn": hpnn.__version__,
        "git": git_state(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "load_start": load_start,
        "env": {k: os.environ.get(k, "(unset)") for k in ENV_VARS},
        "blas": blas_info(frameworks),
        "jax": "not installed",
        "samples": args.samples,
        "repeats": args.repeats,
    }
    res["header"] = header
    if has_jax:
        import jax

        header["jax"] = f"{jax.__version__} jit, devices {jax.devices()}"
    matmul = matmul_gflops()["values"]
    x, labels = make_data(args.samples)
    for wl in WORKLOADS:
        if wl in args.selected:
            want_fit = wl == "cnn32" and "fit32" in args.selected
            res["speed"][wl] = measure_workload(wl, frameworks, x, labels, args.repeats, want_fit)
    if "cnn32" in args.selected or "cnn128" in args.selected:
        macs, per_layer = hpnn_forward_macs("cnn")
        res["flops"] = {"macs": macs, "per_layer": per_layer, "train_flops": 3 * 2 * macs}
    if "cold" in args.selected:
        log("cold start")
        cold = [fw for fw in frameworks if fw not in CHILD_ONLY]
        res["cold"] = measure_cold_start(cold, 1 if args.quick else 3)
    res["matmul"] = summarize(matmul + matmul_gflops()["values"])
    header["load_end"] = os.getloadavg()
    header["wall_s"] = time.perf_counter() - start
    return res, frameworks


def main(argv=None) -> int:
    inherited = max_rss_mib()  # first thing: what a child got from its parent at spawn
    args = parse_args(argv)
    if args.memory_child:
        framework, workload = args.memory_child.split(":")
        memory_child(framework, workload, args.samples, inherited)
        return 0
    res, frameworks = run(args)
    print_report(res, frameworks)
    if not jax_available():
        print("jax: not installed")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, default=str)
        print(f"wrote {args.json}")
    if args.families:
        import families

        more = ["--repeats", str(args.repeats)]
        if args.json:
            more += ["--json", f"{args.json}.families.json"]
        return families.main(more)
    return 0


if __name__ == "__main__":
    sys.exit(main())
