"""The MLflow model of a phase that takes media: a pyfunc around ``avshared.inference.prediction``.

Its input is a table with one recording per row: a ``path`` readable where the model runs, or the
file's ``bytes`` (base64) with an optional ``name`` whose extension says what it is. Its output is
the predict pipeline's table. The model carries its preprocessing as artifacts: the phase's model
specification (feature parameters, spectrogram statistics, frame sampling, window) and weights.

The model carries its code and its environment: the ``avshared`` package is logged with it
(``code_paths``) and its requirements are the distributions the code imports and all of theirs,
pinned at the installed versions, which are requirements.lock's (``tests/test_environment.py``).
So ``mlflow models serve -m models:/avshared-<phase>@candidate`` builds its environment from the
model's own files (``--env-manager local`` serves from the current one instead). Every MLflow call
of the media model is in this module.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import logging
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import avshared
from avshared.inference.prediction import EmotionPredictor, MediaInput, find_media_inputs

logger = logging.getLogger(__name__)

#: Where in the phase's run the model is logged.
ARTIFACT_NAME = "media_model"
INPUT_COLUMNS = ("path", "bytes", "name")
#: The file MLflow runs to build the model (models from code: nothing pickled).
MODEL_CODE = Path(__file__).with_name("media_model_code.py")
#: The package logged with the model, so that it loads where avshared is not installed.
PACKAGE_DIR = Path(avshared.__file__).parent
#: The distributions the served code imports (this module and what it imports; PyAV decodes
#: containers on first use). tests/test_serving.py checks the list against a fresh interpreter.
SERVED_DISTRIBUTIONS = (
    "mlflow",
    "torch",
    "torchaudio",
    "av",
    "opencv-python-headless",
    "soundfile",
    "numpy",
    "pandas",
    "scipy",
    "tqdm",
    "kedro",
)


class MediaEmotionModel(mlflow.pyfunc.PythonModel):
    """pyfunc model: recordings (paths or base64 bytes) -> emotion probabilities per recording."""

    def load_context(self, context) -> None:
        self.spec = json.loads(Path(context.artifacts["model_spec"]).read_text())
        self.weights = torch.load(
            context.artifacts["model_weights"], map_location="cpu", weights_only=True
        )
        self.predictor = EmotionPredictor(self.spec, self.weights)

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """``model_input``: a DataFrame with ``path`` and/or ``bytes`` (+ ``name``) per row."""
        frame = pd.DataFrame(model_input)
        unknown = set(frame.columns) - set(INPUT_COLUMNS)
        if unknown or not {"path", "bytes"} & set(frame.columns):
            raise ValueError(
                f"input columns {sorted(frame.columns)}: give `path` (a media file readable by "
                "the server) or `bytes` (the file, base64) with an optional `name` (its file name)"
            )
        # Bytes become files in a private folder that is removed with the request.
        with tempfile.TemporaryDirectory(prefix="avshared-request-") as folder:
            inputs = [
                _row_input(row, index, Path(folder))
                for index, row in enumerate(frame.to_dict("records"))
            ]
            return self.predictor.predict(inputs)


def _present(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _row_input(row: Mapping[str, Any], index: int, folder: Path) -> MediaInput:
    if _present(row.get("bytes")):
        name = row.get("name") if _present(row.get("name")) else f"input_{index}"
        try:
            content = base64.b64decode(row["bytes"], validate=True)
        except ValueError as err:
            return MediaInput(name, problem=f"unreadable: `bytes` is not base64 ({err})")
        # The row number keeps same-named uploads apart; the name's suffix tells the format.
        target = folder / str(index) / Path(name).name
        target.parent.mkdir()
        target.write_bytes(content)
        found = find_media_inputs(str(target))[0]
        return MediaInput(name, found.audio_path, found.video_path, found.problem)
    if _present(row.get("path")):
        found = find_media_inputs(row["path"])
        if len(found) != 1 or Path(row["path"]).is_dir():
            return MediaInput(row["path"], problem="wrong input: `path` must name one media file")
        return found[0]
    return MediaInput(f"row {index}", problem="missing: the row has neither `path` nor `bytes`")


def signature(emotions: list[str]) -> ModelSignature:
    """Input: path, bytes, name (all optional strings); output: the prediction table."""
    inputs = Schema([ColSpec("string", name, required=False) for name in INPUT_COLUMNS])
    outputs = Schema(
        [
            ColSpec("string", "input"),
            *(ColSpec("double", f"p_{emotion}") for emotion in emotions),
            ColSpec("string", "predicted"),
            ColSpec("string", "modalities"),
            ColSpec("long", "windows"),
            ColSpec("string", "flags"),
            ColSpec("string", "problem"),
            ColSpec("string", "phase"),
            ColSpec("string", "mlflow_run_id"),
            ColSpec("string", "data"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def example_recording(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A small WAV (a vowel-like tone) to show the input format; it needs nothing on disk."""
    import soundfile as sf

    t = np.arange(round(seconds * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * 180 * t) * np.hanning(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, tone, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def pinned_requirements(names: Iterable[str] = SERVED_DISTRIBUTIONS) -> list[str]:
    """``name==version`` for each of ``names`` and everything they require on this platform, at
    the installed versions (the lock's, in an environment installed from requirements.lock)."""
    pins: dict[str, str] = {}
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in pins:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as err:
            raise RuntimeError(
                f"{name} is needed by the served model but not installed: "
                "`pip install -c requirements.lock -e .`"
            ) from err
        pins[name] = distribution.version
        for requirement in map(Requirement, distribution.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def log_and_register(
    spec: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
    name: str,
    alias: str,
) -> str:
    """Log the media model into the phase's MLflow run (``spec["mlflow_run_id"]``), register it
    as ``name`` and point ``alias`` at the new version; its URI. The catalog's
    ``<phase>.media_model`` names them (``avshared-<phase>``, ``candidate``)."""
    example = pd.DataFrame(
        {"bytes": [base64.b64encode(example_recording()).decode()], "name": ["example.wav"]}
    )
    with tempfile.TemporaryDirectory(prefix="avshared-model-") as folder:
        spec_path, weights_path = Path(folder) / "model_spec.json", Path(folder) / "weights.pt"
        spec_path.write_text(json.dumps(spec, indent=2))
        torch.save(dict(weights), weights_path)
        with mlflow.start_run(run_id=spec["mlflow_run_id"], nested=True):
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT_NAME,
                python_model=str(MODEL_CODE),
                artifacts={"model_spec": str(spec_path), "model_weights": str(weights_path)},
                signature=signature(spec["emotions"]),
                input_example=example,
                code_paths=[str(PACKAGE_DIR)],
                pip_requirements=pinned_requirements(),
                registered_model_name=name,
                tags={"data": spec["data_source"], "phase": spec["phase"]},
            )
    version = info.registered_model_version
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, alias, version)
    if spec["demo"]:
        client.set_model_version_tag(name, version, "data", "demo")
        client.update_model_version(
            name, version, description="DEMO: trained on generated data, not on CREMA-D"
        )
    uri = f"models:/{name}@{alias}"
    logger.info("Phase %s: media model registered as %s (version %s)", spec["phase"], uri, version)
    return uri


def load_registered(uri: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The specification and weights of a logged media model (``models:/...``, ``runs:/...``)."""
    model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    if not isinstance(model, MediaEmotionModel):
        raise ValueError(
            f"{uri} is not an avshared media model (logged by avshared.inference.serving)"
        )
    return model.spec, model.weights
