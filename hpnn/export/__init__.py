"""Export to other formats: ONNX (``pip install 'hpnn[onnx]'``).

>>> hpnn.export.to_onnx(model, "model.onnx")                        # doctest: +SKIP

Command line: ``hpnn export MODEL.hpnn MODEL.onnx`` (:func:`cli_main`). The
``onnx`` package is imported only when a model is exported.
"""

from __future__ import annotations

from hpnn.export.cli import cli_main
from hpnn.export.onnx import DEFAULT_OPSET, to_onnx


def supported_layers() -> list[str]:
    """Names of the layer classes ``to_onnx`` can export."""
    from hpnn.export.onnx_layers import supported_layers as names

    return names()


__all__ = ["DEFAULT_OPSET", "cli_main", "supported_layers", "to_onnx"]
