"""The served model's environment: its requirements are the lock's pins for everything its code
imports. (That it loads and predicts without the project's src/ is tested end to end in
tests/pipelines/predict/test_predict.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from packaging.utils import canonicalize_name

from avshared.inference.serving import SERVED_DISTRIBUTIONS, pinned_requirements


@pytest.mark.lock
def test_the_model_requirements_are_the_locks_pins(locked_versions):
    pins = dict(line.split("==") for line in pinned_requirements())
    locked = locked_versions
    assert set(map(canonicalize_name, SERVED_DISTRIBUTIONS)) <= set(pins)
    differing = {name: (v, locked.get(name)) for name, v in pins.items() if locked.get(name) != v}
    assert not differing, f"served-model pins that are not the lock's: {differing}"


#: Imported by a library when present (FastAPI's faster JSON), not needed.
OPTIONAL = {"orjson"}
IMPORTED = """
import importlib.metadata, json, sys
import av, avshared.inference.serving
names = {m.split(".")[0] for m in sys.modules}
dists = importlib.metadata.packages_distributions()
print(json.dumps(sorted({d for n in names for d in dists.get(n, [])} - {"avshared"})))
"""


def test_every_distribution_the_served_code_imports_is_a_requirement():
    imported = json.loads(
        subprocess.run(
            [sys.executable, "-c", IMPORTED], capture_output=True, text=True, check=True
        ).stdout
    )
    required = {line.split("==")[0] for line in pinned_requirements()}
    missing = sorted(
        name for name in set(imported) - OPTIONAL if canonicalize_name(name) not in required
    )
    assert not missing, f"imported by the served code but not in its requirements: {missing}"
