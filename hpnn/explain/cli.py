"""``hpnn explain MODEL --image IMG``: write PNG explanations of one prediction."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

METHODS = ("saliency", "smoothgrad", "integrated_gradients", "grad_cam", "occlusion")


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model", help="a model file written by model.save()")
    p.add_argument(
        "--image",
        required=True,
        help=".npy array (H, W), (H, W, C) or a batch (N, H, W, C) with --index; or a PNG/JPEG",
    )
    p.add_argument("--index", type=int, default=0, help="which image of a batch (.npy)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--target", type=int, default=None, help="class to explain (default: predicted)")
    p.add_argument("--layer", default=None, help="Grad-CAM layer name (default: last Conv2D)")
    p.add_argument("--steps", type=int, default=64, help="integrated-gradients steps")
    p.add_argument("--seed", type=int, default=0, help="SmoothGrad noise seed")
    p.add_argument("--out", default="explanations", help="output folder for the PNGs")
    return p


def read_image(path, index, input_shape):
    """One image shaped like the model's input (without batch), scaled to [0, 1] if 8-bit."""
    path = Path(path)
    if path.suffix == ".npy":
        img = np.load(path)
    else:
        from matplotlib.image import imread

        from hpnn.explain.plot import figure  # noqa: F401 - raises the extra's ImportError

        img = imread(path)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255
    img = np.asarray(img, dtype=np.float32)
    expected = tuple(input_shape[1:])
    if img.ndim == len(expected) + 1:
        if not 0 <= index < len(img):
            raise ValueError(f"--index must be in [0, {len(img)}). Received: --index={index}")
        img = img[index]
    if img.ndim == 2 and len(expected) == 3:
        img = img[..., None]
    if img.ndim == 3 and len(expected) == 3 and img.shape[-1] != expected[-1]:
        rgb = img[..., :3]
        img = rgb.mean(axis=-1, keepdims=True) if expected[-1] == 1 else rgb
    if img.ndim == 3 and len(expected) == 3 and img.shape[:2] != expected[:2]:
        from hpnn.explain.gradcam import resize_bilinear

        img = np.moveaxis(resize_bilinear(np.moveaxis(img, -1, 0), expected[:2]), 0, -1)
    if any(e is not None and e != s for e, s in zip(expected, img.shape, strict=False)) or (
        img.ndim != len(expected)
    ):
        raise ValueError(
            f"--image must hold an input of shape {expected}. Received: shape={img.shape}"
        )
    return img


def explain_image(model, image, methods, target=None, layer=None, steps=64, seed=0):
    """``{method: attribution}`` for one image, the class explained, its output, and notes."""
    from hpnn import explain

    x = image[None]
    probs = model.predict(x, verbose=0)[0]
    cls = int(np.argmax(probs)) if target is None else int(target)
    maps, notes = {}, []
    for m in methods:
        if m == "saliency":
            maps[m] = explain.saliency(model, x, cls, absolute=True)[0]
        elif m == "smoothgrad":
            maps[m] = explain.smoothgrad(model, x, cls, seed=seed, absolute=True)[0]
        elif m == "integrated_gradients":
            ig = explain.integrated_gradients(model, x, cls, steps=steps)
            maps[m] = np.abs(ig.values[0])
            notes.append(
                f"integrated_gradients: completeness gap {ig.relative_gap[0]:.2%} of "
                f"f(x) - f(baseline) with {steps} steps (raise --steps if large)"
            )
        elif m == "grad_cam":
            maps[m] = explain.grad_cam(model, x, layer, cls)[0]
        else:
            maps[m] = explain.occlusion(model, x, cls)[0]
    return maps, cls, float(probs[cls]), notes


def run_cli(args) -> int:
    from hpnn.explain.plot import plot_explanations, save_overlay
    from hpnn.models import load_model

    model = load_model(args.model)
    image = read_image(args.image, args.index, model.input_shape)
    maps, cls, p, notes = explain_image(
        model, image, args.methods, args.target, args.layer, args.steps, args.seed
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.image).stem
    print(f"class {cls}: output {p:.4f}")
    for note in notes:
        print(note)
    for name, a in maps.items():
        print(save_overlay(image, a, out / f"{stem}_{name}.png", title=name))
    print(plot_explanations(image, maps, out / f"{stem}_explain.png", title=f"class {cls}"))
    return 0


def cli_main(argv=None) -> int:
    """``hpnn explain ...`` from Python; returns the exit status (see :func:`hpnn.cli.main`)."""
    from hpnn.cli import main

    return main(["explain", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(cli_main())
