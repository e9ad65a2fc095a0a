"""The import layers of pyproject.toml's [tool.importlinter] hold: wiring on top (pipelines), then
datasets and hooks, the engine and inference, evaluation, the libraries (models, features, splits)
and the dataset's vocabulary at the bottom; no library imports Kedro; no pipeline imports another
pipeline's nodes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import avshared

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_imports_point_down_the_layers() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    source = str(Path(avshared.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [str(lint_imports), "--config", str(PROJECT_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
