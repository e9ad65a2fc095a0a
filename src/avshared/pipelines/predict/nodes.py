"""Nodes of the ``predict`` pipeline: find the recordings, predict them, show the result."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from avshared.inference.prediction import (
    EmotionPredictor,
    MediaInput,
    find_media_inputs,
    format_predictions,
)

logger = logging.getLogger(__name__)

INPUT_COLUMNS = ["name", "audio_path", "video_path", "problem"]


def find_prediction_inputs(inputs: str) -> pd.DataFrame:
    """One row per recording at ``inputs`` (a file, a folder or a glob): name, audio_path,
    video_path (WAV+FLV pairs matched by stem) and problem (a missing or unsupported file)."""
    if not inputs:
        raise ValueError(
            "predict.inputs is empty: give the recordings, e.g. kedro run --pipelines=predict "
            "--params=predict.inputs=path/to/clips (a file, a folder or a glob)"
        )
    found = find_media_inputs(str(inputs))
    table = pd.DataFrame([vars(item) for item in found], columns=INPUT_COLUMNS)
    logger.info(
        "%d recordings to predict at %s (%d with a problem)",
        len(table),
        inputs,
        (table["problem"] != "").sum(),
    )
    return table


def predict_emotions(
    prediction_inputs: pd.DataFrame, prediction_model: dict[str, Any], options: dict[str, Any]
) -> pd.DataFrame:
    """Emotion probabilities of every recording with the chosen model, one row per input:
    input, p_<emotion>, predicted, modalities, windows, flags, problem, phase, mlflow_run_id,
    data (demo | crema-d), model (where the model came from). Prints a short table of them."""
    spec = prediction_model["spec"]
    predictor = EmotionPredictor(
        spec,
        prediction_model["weights"],
        workers=options["workers"],
        batch_size=options["batch_size"],
    )
    jobs = [
        MediaInput(
            row["name"],
            row["audio_path"] if pd.notna(row["audio_path"]) else None,
            row["video_path"] if pd.notna(row["video_path"]) else None,
            row["problem"] if pd.notna(row["problem"]) else "",
        )
        for row in prediction_inputs.to_dict("records")
    ]
    started = time.perf_counter()
    predictions = predictor.predict(jobs).assign(model=prediction_model["source"])
    elapsed = time.perf_counter() - started
    stage_total = sum(predictor.cpu_seconds.values()) or 1.0
    logger.info(
        "Predicted %d recordings in %.2f s (%.1f per s); CPU time per stage: %s",
        len(jobs),
        elapsed,
        len(jobs) / max(elapsed, 1e-9),
        ", ".join(
            f"{stage} {seconds:.2f} s ({seconds / stage_total:.0%})"
            for stage, seconds in predictor.cpu_seconds.items()
        ),
    )
    # Printed, not logged: the log handler wraps long lines to the width of whatever shows them.
    print(format_predictions(predictions, spec["demo"], options["rows_shown"]), flush=True)
    logger.info(
        "The full table: the catalog's `predictions` (data/07_model_output/predictions.csv)"
    )
    return predictions
