"""``hpnn robust MODEL``: the robustness table of a saved model on the Fashion-MNIST test set."""

from __future__ import annotations

import argparse
import json
import sys
import time


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model", help="a model file written by model.save()")
    p.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.05, 0.1])
    p.add_argument(
        "--attacks", nargs="+", choices=("fgsm", "pgd", "noise"), default=["fgsm", "pgd", "noise"]
    )
    p.add_argument("--norm", choices=("inf", "2"), default="inf", help="PGD's norm")
    p.add_argument("--steps", type=int, default=10, help="PGD steps")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N test images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="directory with the four Fashion-MNIST files")
    p.add_argument("--plot", default=None, help="write accuracy against epsilon to this PNG")
    p.add_argument("--json", default=None, help="write the report to this JSON file")
    return p


def run_cli(args) -> int:
    from hpnn.cli import load_fashion_mnist
    from hpnn.models import load_model
    from hpnn.robust.evaluate import evaluate_robustness

    model = load_model(args.model)
    _, _, (x, y) = load_fashion_mnist(args.data, validation=0)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    start = time.perf_counter()
    report = evaluate_robustness(
        model,
        x,
        y,
        args.eps,
        attacks=tuple(args.attacks),
        norm="inf" if args.norm == "inf" else 2,
        pgd_steps=args.steps,
        seed=args.seed,
    )
    print(report.table())
    pgd = f", PGD {args.steps} steps (L-{args.norm})" if "pgd" in args.attacks else ""
    print(f"{len(x)} test images{pgd}, {time.perf_counter() - start:.0f} s")
    if args.plot:
        print(report.plot(args.plot))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.as_dict(), f, indent=1)
    return 0


def cli_main(argv=None) -> int:
    """``hpnn robust ...`` from Python; returns the exit status (see :func:`hpnn.cli.main`)."""
    from hpnn.cli import main

    return main(["robust", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(cli_main())
