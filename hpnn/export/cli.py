"""``hpnn export MODEL OUT.onnx``: a saved model as an ONNX file."""

from __future__ import annotations

import argparse
import sys

from hpnn.export.onnx import DEFAULT_OPSET, to_onnx


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model", help="a model file written by model.save()")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (>= 17)")
    return p


def run_cli(args) -> int:
    from hpnn.models import load_model

    model = load_model(args.model)
    to_onnx(model, args.output, opset=args.opset)
    print(f"wrote {args.output} (opset {args.opset}, {len(model.layers)} layers)")
    return 0


def cli_main(argv=None) -> int:
    """``hpnn export ...`` from Python; returns the exit status (see :func:`hpnn.cli.main`)."""
    from hpnn.cli import main

    return main(["export", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(cli_main())
