"""docs/keras_api.md, the table of Keras 3's API in hpnn, is true and up to date."""

import importlib.util
import re
from pathlib import Path

import hpnn

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "keras_api.md"


def load_script():
    spec = importlib.util.spec_from_file_location("keras_api", ROOT / "scripts" / "keras_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_entries():
    section, out = None, []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"## keras\.(\S+)", line):
            section = m.group(1)
        elif m := re.match(r"\| `([^`]+)` \| (.*) \|$", line):
            out.append((section, m.group(1), m.group(2)))
    return out


def test_every_name_marked_yes_exists_in_hpnn():
    script = load_script()
    entries = table_entries()
    assert len(entries) > 500, "the table lists Keras' public API"
    missing = []
    for section, name, status in entries:
        if status != "yes":
            continue
        found = (
            hasattr(hpnn.Model, name)
            if section == "Model"
            else script.resolve(hpnn, f"{section}.{name}") is not None
        )
        if not found:
            missing.append(f"{section}.{name}")
    assert not missing, f"marked yes but not in hpnn: {missing}"


def test_the_table_is_current(keras):
    assert load_script().main(["--check"]) == 0, "run: python scripts/keras_api.py"
