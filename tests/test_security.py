"""Nothing the project loads can run code from a file a user was sent, and its servers listen on
the loopback interface only unless a user says otherwise."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((PROJECT_ROOT / "src").rglob("*.py"))


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for source in SOURCES:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                found.append((source, node))
    return found


def test_every_torch_load_is_restricted_to_weights():
    unsafe = [
        f"{source.relative_to(PROJECT_ROOT)}:{call.lineno}"
        for source, call in _calls("torch.load")
        if not any(
            k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in call.keywords
        )
    ]
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


def test_no_pickle_loads_in_the_package():
    assert not _calls("pickle.load") and not _calls("pickle.loads")


def test_catalog_has_no_pickle_dataset_and_loads_state_dicts_safely():
    catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog.yml").read_text())
    types = {name: entry["type"] for name, entry in catalog.items() if isinstance(entry, dict)}
    assert not [name for name, kind in types.items() if "Pickle" in kind], types
    for name, kind in types.items():
        if kind.endswith("PyTorchDataset"):
            load_args = catalog[name].get("load_args", {})
            assert load_args.get("weights_only", True) is True, name


def test_uis_bind_to_loopback_by_default():
    mlflow_conf = yaml.safe_load((PROJECT_ROOT / "conf/base/mlflow.yml").read_text())
    assert mlflow_conf["ui"]["host"] == "127.0.0.1"
    readme = (PROJECT_ROOT / "README.md").read_text()
    for command in re.findall(r"python -m http\.server[^\n`]*", readme):
        assert "-b 127.0.0.1" in command, command
    assert "0.0.0.0" not in readme
