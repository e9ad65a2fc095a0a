"""The reporting pipeline's tests use the synthetic world of the evaluation tests
(tests/evaluation/conftest.py): its fixtures, loaded from that file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "evaluation_conftest", Path(__file__).resolve().parents[2] / "evaluation" / "conftest.py"
)
_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_world)

clip_manifest = _world.clip_manifest
split = _world.split
test_clips = _world.test_clips
crowd_labels = _world.crowd_labels
phase_predictions = _world.phase_predictions
validation_clips = _world.validation_clips
validation_predictions = _world.validation_predictions
phase_metrics = _world.phase_metrics
phase_histories = _world.phase_histories
reporting_params = _world.reporting_params
