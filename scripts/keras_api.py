"""Write docs/keras_api.md: each public name of Keras 3's API, and whether hpnn has it.

    KERAS_BACKEND=torch python scripts/keras_api.py [--check]

A name is "yes" when the same path resolves in hpnn (``keras.layers.Dense`` ->
``hpnn.layers.Dense``; ``keras.Model.fit`` -> ``hpnn.Model.fit``). Where it does not,
the reason comes from ``REASONS`` (an exact name, or a prefix ending in ``*``), else
"not yet". ``--check`` exits 1 when the file differs from what it would write
(``tests/test_keras_api_table.py`` runs it where Keras is installed).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "docs", "keras_api.md")

MODULES = [
    "layers", "ops", "ops.nn", "ops.linalg", "ops.image", "activations", "losses", "metrics",
    "optimizers", "optimizers.schedules", "callbacks", "initializers", "regularizers",
    "constraints", "models", "saving", "utils", "random", "datasets", "applications",
    "backend", "config", "mixed_precision", "quantizers", "distribution", "tree",
    "dtype_policies", "export", "visualization", "preprocessing",
]  # fmt: skip

TF = "needs TensorFlow or tf.data"
JAX = "a JAX/distribution-backend feature; hpnn's scale-out is MPI (hpnn.distributed)"
QUANT = "quantization: not in hpnn"
REASONS = {
    "layers.TFSMLayer": TF,
    "layers.JaxLayer": "wraps JAX functions",
    "layers.FlaxLayer": "wraps Flax modules",
    "layers.TorchModuleWrapper": "wraps PyTorch modules; PyTorch is never an hpnn dependency",
    "layers.Pipeline": "preprocessing pipelines over tf.data: not in hpnn",
    "layers.StringLookup": "string tensors: hpnn's tensors are numeric",
    "layers.TextVectorization": "string tensors: hpnn's tensors are numeric",
    "layers.HashedCrossing": "string/hash preprocessing: not in hpnn",
    "layers.Hashing": "string/hash preprocessing: not in hpnn",
    "layers.InputSpec": "Keras' internal input checks; hpnn layers check shapes themselves",
    "layers.Wrapper": "base class; hpnn's wrappers (TimeDistributed, Bidirectional) stand alone",
    "distribution.*": JAX,
    "quantizers.*": QUANT,
    "mixed_precision.*": "mixed precision: hpnn trains in float32",
    "dtype_policies.*": "dtype policies: hpnn trains in float32",
    "export.*": "TF SavedModel export; hpnn exports ONNX (hpnn.export)",
    "applications.*": "pretrained applications need downloaded weights: not in hpnn",
    "datasets.*": "hpnn.datasets has Fashion-MNIST and MNIST (from the Debian package)",
    "config.*": "Keras' backend configuration; hpnn has one backend (NumPy, CuPy on a GPU)",
    "backend.*": "Keras' backend switches; hpnn has one backend (NumPy, CuPy on a GPU)",
    "tree.*": "nested-structure helpers: not in hpnn",
    "visualization.*": "not in hpnn (hpnn.plot draws training curves)",
    "preprocessing.*": "legacy preprocessing: not in hpnn",
    "utils.FeatureSpace": TF,
    "utils.image_dataset_from_directory": TF,
    "utils.text_dataset_from_directory": TF,
    "utils.audio_dataset_from_directory": TF,
    "utils.timeseries_dataset_from_array": TF,
    "utils.split_dataset": TF,
    "utils.get_file": "downloads: hpnn's loaders verify their own files",
    "Model.quantize": QUANT,
    "Model.quantized_build": QUANT,
    "Model.quantized_call": QUANT,
    "Model.quantization_mode": QUANT,
    "Model.get_quantization_layer_structure": QUANT,
    "Model.stateless_call": "JAX-style stateless calls: hpnn's variables are objects",
    "Model.stateless_compute_loss": "JAX-style stateless calls: hpnn's variables are objects",
    "Model.torch_params": "the torch backend's parameter list",
    "Model.export": "TF SavedModel export; hpnn exports ONNX (hpnn.export)",
    "Model.dtype_policy": "dtype policies: hpnn trains in float32",
    "ops.image.*": "image ops: not yet",
    "ops.linalg.*": "linear algebra beyond matmul: not yet",
    "ops.nn.ctc_loss": "CTC: not yet",
    "ops.nn.ctc_decode": "CTC: not yet",
}


def public_names(obj) -> list[str]:
    return sorted(n for n in dir(obj) if not n.startswith("_"))


def resolve(root, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def reason(name: str) -> str:
    if name in REASONS:
        return REASONS[name]
    for key, why in REASONS.items():
        if key.endswith("*") and name.startswith(key[:-1]):
            return why
    return "not yet"


def rows(keras, hpnn):
    """``(section, [(name, status)])`` for each module and for ``Model``'s methods."""
    out = []
    for mod in MODULES:
        kmod = resolve(keras, mod)
        if kmod is None:
            continue
        entries = []
        for n in public_names(kmod):
            if isinstance(getattr(kmod, n), type(keras)):  # a submodule: its own section
                continue
            full = f"{mod}.{n}"
            entries.append((n, "yes" if resolve(hpnn, full) is not None else reason(full)))
        out.append((f"keras.{mod}", entries))
    # under the torch backend keras.Model is also a torch.nn.Module: leave its methods out
    torch_module = getattr(keras.Model, "__mro__", ())
    torch_names = set().union(*(dir(c) for c in torch_module if c.__module__.startswith("torch")))
    methods = [
        (n, "yes" if hasattr(hpnn.Model, n) else reason(f"Model.{n}"))
        for n in public_names(keras.Model)
        if n not in torch_names
    ]
    out.append(("keras.Model (methods and attributes)", methods))
    return out


def render(keras, hpnn) -> str:
    sections = rows(keras, hpnn)
    total = sum(len(e) for _, e in sections)
    have = sum(s == "yes" for _, e in sections for _, s in e)
    lines = [
        "# Keras 3's API in hpnn",
        "",
        f"Generated by `scripts/keras_api.py` against Keras {keras.__version__}: "
        f"{have} of {total} public names resolve in hpnn under the same path "
        '(`keras.X.Y` -> `hpnn.X.Y`). "yes" means the name exists and is tested '
        "against Keras' behaviour where the test suite has a case for it; otherwise "
        "the reason it is missing.",
        "",
    ]
    for title, entries in sections:
        n_yes = sum(s == "yes" for _, s in entries)
        lines += [f"## {title} ({n_yes} of {len(entries)})", "", "| name | hpnn |", "|---|---|"]
        lines += [f"| `{n}` | {s} |" for n, s in entries]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = p.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    import hpnn

    text = render(keras, hpnn)
    if args.check:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUT} is stale: run python scripts/keras_api.py", file=sys.stderr)
                return 1
        return 0
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
