"""The benchmark's printed report: header, speed, FLOP, memory and cold-start tables."""

from __future__ import annotations

import os
import statistics

DASH = "\N{EN DASH}"  # the ranges print as "median (min-max)" with an en dash
RANGE = f"median (min{DASH}max)"


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_summary(s, fmt=fmt_rate) -> str:
    if s is None:
        return "-"
    return f"{fmt(s['median'])} ({fmt(s['min'])}{DASH}{fmt(s['max'])})"


def describe_lib(lib: dict) -> str:
    extra = ", ".join(
        f"{k}={lib[k]}" for k in ("architecture", "threading_layer") if lib.get(k) is not None
    )
    version = lib.get("version") or ""
    name = os.path.basename(lib["filepath"])
    return (
        f"{lib['internal_api']} {version} num_threads={lib['num_threads']}"
        f"{' (' + extra + ')' if extra else ''} [{name}]"
    )


# -- tables ------------------------------------------------------------------------------------
def table(headers, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells):
        return " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


LABELS = {
    "cnn32": "train CNN, batch 32",
    "cnn128": "train CNN, batch 128",
    "mlp128": "train MLP 784-512-512-10, batch 128",
    "infer128": "predict CNN, batch 128",
    "lstm128": "train LSTM(128) 28x28, batch 128",
    "gru128": "train GRU(128) 28x28, batch 128",
}


def print_header(res) -> None:
    h = res["header"]
    print("== hpnn benchmark " + "=" * 62)
    print(f"date        {h['date']}")
    print(f"python      {h['python']}   numpy {h['numpy']}   hpnn {h['hpnn']} ({h['git']})")
    print(f"cpu         {h['cpu']}; {h['cpus']} logical CPUs, {h['affinity']} usable")
    load = h["load_start"]
    warn = "   <-- HIGH: the machine is busy, expect noise" if load[0] > 0.5 * h["cpus"] else ""
    print(f"load avg    {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min) at start{warn}")
    env = "  ".join(f"{k}={v}" for k, v in h["env"].items())
    print(f"env         {env}   (read only; not changed here)")
    print("threadpoolctl:")
    for lib in h["blas"]["numpy"]:
        print(f"  numpy/hpnn: {describe_lib(lib)}")
    for lib in h["blas"].get("torch", []):
        print(f"  torch:      {describe_lib(lib)}")
    rt = h["blas"].get("torch_runtime")
    if rt:
        print(
            f"  torch:      {rt['version']}, BLAS_INFO={rt['blas']} (linked statically, not seen "
            f"by threadpoolctl; {rt['mkl_threads']}); set_num_threads({rt['num_threads']}) -> "
            f"get_num_threads()={rt['num_threads']}, interop={rt['interop_threads']}"
        )
    print(f"  jax:        {h['jax']}")
    print(
        f"data        {h['samples']} random float32 samples (28, 28, 1), 10 classes; "
        f"1 warm-up pass, then {h['repeats']} timed passes per framework, alternated"
    )
    mm = res["matmul"]
    print(
        f"matmul      numpy float32 2048x2048 @ 2048x2048: {fmt_summary(mm, lambda v: f'{v:.0f}')}"
        f" GFLOP/s, {RANGE}, before and after the run"
    )


def print_speed(res, frameworks) -> None:
    others = [fw for fw in frameworks if fw != "hpnn"]
    headers = ["workload (samples/s)"] + [f"{fw} {RANGE}" for fw in frameworks]
    headers += [f"hpnn/{fw}" for fw in others] + ["cores self/others: " + ", ".join(frameworks)]
    rows = []
    for wl, r in res["speed"].items():
        row = [LABELS[wl]] + [fmt_summary(r.get(fw)) for fw in frameworks]
        row += [f"{r['hpnn']['median'] / r[fw]['median']:.3f}" if fw in r else "-" for fw in others]
        row += [
            ", ".join(
                f"{statistics.median(r[fw]['cores']['self']):.1f}/"
                f"{statistics.median(r[fw]['cores']['others']):.1f}"
                if fw in r
                else "-"  # no twin in this framework (the recurrent rows have no JAX one)
                for fw in frameworks
            )
        ]
        rows.append(row)
        if "hpnn_fit" in r:
            fit = r["hpnn_fit"]
            rows.append(
                ["  same, through hpnn model.fit (1 pass)", fmt_rate(fit)]
                + ["-"] * (len(frameworks) - 1)
                + [f"{fit / r[fw]['median']:.3f}" if fw in r else "-" for fw in others]
                + [""]
            )
    print()
    print(table(headers, rows))
    print(
        "cores self/others: median CPU seconds per wall second during a timed pass, of this "
        "process and of everything else (/proc/stat); others > 0 means the timing shared the "
        "2 cores. Spinning BLAS/OpenMP threads count as busy."
    )
    if "torch-stock" in frameworks:
        print(
            "torch: PyTorch in this process, where hpnn's import raised glibc's mmap and trim "
            "thresholds (hpnn.allocator), which speeds PyTorch up too; torch-stock: PyTorch as "
            "installed, in a child process that never imports hpnn (glibc's defaults), timed "
            "pass by pass in the same alternation."
        )
    for wl, r in res["speed"].items():
        if "hpnn_fit" in r:
            overhead = r["hpnn"]["median"] / r["hpnn_fit"] - 1
            print(f"fit loop overhead vs train_step ({wl}): {overhead:+.1%} time per sample")


def print_flops(res, frameworks) -> None:
    fl = res.get("flops")
    if not fl:
        return
    peak = res["matmul"]["median"]
    print()
    print(
        f"CNN forward MACs/sample: {fl['macs']:,} ("
        + ", ".join(f"{n} {m:,}" for n, m in fl["per_layer"])
        + f"); training FLOPs/sample = 3 x 2 x MACs = {fl['train_flops']:,}"
    )
    print(
        f"matmul-bound ceiling at {peak:.0f} GFLOP/s: "
        f"{peak * 1e9 / fl['train_flops']:,.0f} training samples/s"
    )
    headers = ["workload", *(f"{fw} GFLOP/s (% of matmul)" for fw in frameworks)]
    rows = []
    for wl in ("cnn32", "cnn128"):
        if wl in res["speed"]:
            cells = []
            for fw in frameworks:
                g = res["speed"][wl][fw]["median"] * fl["train_flops"] / 1e9
                cells.append(f"{g:.2f} ({g / peak:.1%})")
            rows.append([LABELS[wl], *cells])
    if rows:
        print(table(headers, rows))


def print_memory(res) -> None:
    if not res.get("memory"):
        return
    print()
    print(
        f"peak memory (ru_maxrss) of a training run, one fresh subprocess each, "
        f"{res['memory_samples']} samples: warm-up pass + 1 timed pass"
    )
    headers = [
        "workload",
        "framework",
        "baseline MiB",
        "after warm-up",
        "peak MiB",
        "delta MiB",
        "+ workers' peaks",
        "= total peak MiB",
        "PSS at end MiB",
        "samples/s there",
    ]
    rows = []
    for wl, per_fw in res["memory"].items():
        for fw, m in per_fw.items():
            if "error" in m:
                rows.append([wl, fw, "error: " + m["error"][:60], *[""] * 7])
                continue
            workers = m.get("workers", 0)
            rows.append(
                [
                    wl,
                    fw,
                    f"{m['baseline']:.0f}",
                    f"{m['after_warmup']:.0f}",
                    f"{m['peak']:.0f}",
                    f"{m['delta']:.0f}",
                    f"{m['workers_peak']:.0f} ({workers})" if workers else "-",
                    f"{m['peak'] + m.get('workers_peak', 0):.0f}",
                    f"{m['pss']:.0f}" if m.get("pss") else "?",
                    fmt_rate(m["rate"]),
                ]
            )
    print(table(headers, rows))
    print(
        "baseline = interpreter + framework import + data, read right before building the model"
        " (hpnn's includes numba and its compiled kernels when numba is installed: ~120 MiB)."
        " hpnn's batch-split workers (forked copies, hpnn.parallel.workers) count in the"
        " total with their own peaks, which include every page they share with the parent:"
        " an overcount; PSS (each shared page divided among its processes, all processes"
        " summed, at the end of the timed pass) is the memory the run takes from the machine"
    )
    marks = [m for per_fw in res["memory"].values() for m in per_fw.values() if "error" not in m]
    if marks:
        inherited = max(m["inherited"] for m in marks)
        hwm = [m["vm_hwm"] / m["peak"] for m in marks if m.get("vm_hwm")]
        verdict = (
            "below every baseline, so each peak is the child's own"
            if inherited < min(m["baseline"] for m in marks)
            else "NOT below every baseline: those peaks may be this process's, not the child's"
        )
        print(
            f"children started at ru_maxrss <= {inherited:.0f} MiB (inherited from this process "
            f"at spawn; {verdict})"
            + (f"; /proc VmHWM / ru_maxrss = {min(hwm):.2f}{DASH}{max(hwm):.2f}" if hwm else "")
        )


def print_cold(res) -> None:
    if not res.get("cold"):
        return
    print()
    n = len(next(iter(res["cold"].values()))["values"])
    print(f"cold start: fresh `python -c` to end of first CNN training step, batch 32 (n={n})")
    rows = [[fw, fmt_summary(s, lambda v: f"{v:.2f}") + " s"] for fw, s in res["cold"].items()]
    print(table(["framework", RANGE], rows))


def print_report(res, frameworks) -> None:
    print_header(res)
    print_speed(res, frameworks)
    print_flops(res, frameworks)
    print_memory(res)
    print_cold(res)
    print()
    load = res["header"]["load_end"]
    print(
        f"load avg at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (includes this benchmark's "
        f"own 2 threads); wall time {res['header']['wall_s']:.0f} s"
    )
