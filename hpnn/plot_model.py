"""``keras.utils.plot_model``: a model's layers and the calls between them, as a graph.

The graph is written in Graphviz's DOT language by hpnn itself; a ``.dot`` file needs
nothing more. Pictures (``.png``, ``.svg``, ``.pdf``...) are drawn by Graphviz's
``dot`` program (Debian: ``apt-get install graphviz``), through ``pydot`` where it is
installed, else by running ``dot`` directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile


def _label(layer, shape, show_shapes, show_layer_names, show_dtype, show_trainable):
    kind = type(layer).__name__
    parts = [f"{layer.name} ({kind})" if show_layer_names else kind]
    if show_shapes:
        parts.append(f"output: {shape}")
    if show_dtype:
        parts.append(f"dtype: {getattr(layer, 'dtype', '?')}")
    if show_trainable:
        parts.append(f"trainable: {layer.trainable}")
    return "\\n".join(p.replace('"', '\\"') for p in parts)


def _graph(model):
    """``(nodes, edges)``: each node ``(id, layer, output shape)``, each edge ``(a, b)``."""
    nodes, edges = [], []
    calls = getattr(model, "_nodes", None)
    if calls is None:  # Sequential (or subclassed): its layers in a chain
        shape = getattr(model, "input_shape", None)
        prev = None
        for i, layer in enumerate(model.layers):
            out = getattr(layer, "output_shape", None) or shape
            nodes.append((i, layer, out))
            if prev is not None:
                edges.append((prev, i))
            prev = i
        return nodes, edges
    ids = {}
    for t in model._inputs:
        ids[id(t)] = len(nodes)
        nodes.append((len(nodes), t._layer, t.shape))
    for node in calls:
        key = id(node._group) if node._group is not None else id(node)
        if key not in ids:  # (a call with several outputs is one node: all their shapes)
            ids[key] = len(nodes)
            shape = node.shape
            if node._group is not None:
                args = [t.shape for t in node._inputs[: node._n_args]]
                shape = node._layer.compute_output_shape(
                    args if node._layer._list_input else args[0]
                )
            nodes.append((len(nodes), node._layer, shape))
            for t in node._inputs:
                source = id(t._group) if t._group is not None else id(t)
                if (ids[source], ids[key]) not in edges:  # (h and c: one edge)
                    edges.append((ids[source], ids[key]))
        ids[id(node)] = ids[key]
    return nodes, edges


def model_to_dot(
    model,
    show_shapes=False,
    show_dtype=False,
    show_layer_names=True,
    rankdir="TB",
    show_trainable=False,
    dpi=200,
    **kwargs,
) -> str:
    """The model's graph as DOT source text (``rankdir``: "TB" top to bottom, "LR")."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(
            f"plot_model: rankdir must be 'TB', 'LR', 'BT' or 'RL'. Received: rankdir={rankdir!r}"
        )
    nodes, edges = _graph(model)
    lines = [f'digraph "{model.name}" {{', f"  rankdir={rankdir};", f"  dpi={int(dpi)};"]
    lines.append("  node [shape=record, fontname=Helvetica];")
    for i, layer, shape in nodes:
        label = _label(layer, shape, show_shapes, show_layer_names, show_dtype, show_trainable)
        lines.append(f'  n{i} [label="{label}"];')
    lines += [f"  n{a} -> n{b};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_model(model, to_file="model.png", **kwargs):
    """Draw ``model``'s graph into ``to_file`` (its extension picks the format; ``.dot``
    writes the DOT text). The keyword arguments are those of :func:`model_to_dot`."""
    dot = model_to_dot(model, **kwargs)
    path = os.fspath(to_file)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    if fmt in ("dot", "gv"):
        with open(path, "w") as f:
            f.write(dot)
        return path
    try:
        import pydot
    except ImportError:
        pydot = None
    if pydot is not None:
        (graph,) = pydot.graph_from_dot_data(dot)
        graph.write(path, format=fmt)
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise ImportError(
            f"plot_model: drawing a .{fmt} needs Graphviz's 'dot' program (Debian: "
            "apt-get install graphviz; or pip install pydot with Graphviz). Without it, "
            f"write the graph as text: plot_model(model, to_file='model.dot'). Received: "
            f"to_file={path!r}"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".dot", delete=False) as f:
        f.write(dot)
    try:
        subprocess.run([exe, f"-T{fmt}", f.name, "-o", path], check=True, capture_output=True)
    finally:
        os.unlink(f.name)
    return path
