"""The MLflow model of a phase that takes media: a pyfunc around ``avshared.inference.prediction``.

Its input is a table with one recording per row: a ``path`` readable where the model runs, or the
file's ``bytes`` (base64) with an optional ``name`` whose extension says what it is. Its output is
the predict pipeline's table. The model carries its preprocessing as artifacts: the phase's model
specification (feature parameters, spectrogram statistics, frame sampling, window) and weights.

``mlflow models serve -m models:/avshared-<phase>@candidate --env-manager local`` serves it from an
environment where avshared is installed (``pip install -e .``). Every MLflow call of the media
model is in this module.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from avshared.inference.prediction import EmotionPredictor, MediaInput, find_media_inputs

logger = logging.getLogger(__name__)

#: Where in the phase's run the model is logged.
ARTIFACT_NAME = "media_model"
INPUT_COLUMNS = ("path", "bytes", "name")
#: The file MLflow runs to build the model (models from code: nothing pickled).
MODEL_CODE = Path(__file__).with_name("media_model_code.py")
#: What the served model needs besides avshared itself (pinned as the project pins them).
PIP_REQUIREMENTS = (
    "torch==2.14.1",
    "torchaudio==2.11.0",
    "av>=18,<19",
    "opencv-python-headless>=5.0,<6",
    "soundfile>=0.13,<1",
    "numpy>=2,<3",
    "pandas>=2.2,<4",
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
                pip_requirements=list(PIP_REQUIREMENTS),
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
