"""The package's shape: placements import nothing from models or layers, and no module
grows past the line budget."""

import ast
from pathlib import Path

import hpnn

PACKAGE = Path(hpnn.__file__).parent
MAX_LINES = 600


def _imports(path: Path) -> list[str]:
    """Every hpnn module ``path`` imports, at module level or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return [n for n in names if n.startswith("hpnn")]


def test_placements_import_nothing_from_models_or_layers():
    for folder in ("parallel", "distributed"):
        for path in (PACKAGE / folder).glob("*.py"):
            bad = [
                n
                for n in _imports(path)
                if n.startswith(("hpnn.models", "hpnn.layers", "hpnn.training"))
                or n in ("hpnn.layers", "hpnn.models")
            ]
            assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_no_module_is_over_the_line_budget():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
    assert len((PACKAGE / "models" / "model.py").read_text().splitlines()) < 400
