"""The model specification of a trained phase: everything, besides the weights, that it takes to
rebuild the model and to turn a new recording into its inputs exactly as in training.

``build_model_spec`` is a node of the training template (``<phase>.model_spec``, JSON in 06_models);
``package_media_model`` hands it with the weights to ``<phase>.media_model``, the dataset that logs
the phase's media-in MLflow model (avshared.inference.serving) into the phase's run and registers
it. The feature parameters are read from the feature stores the phase trained on (their saved
provenance), not from the current parameters, which may have changed since.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

import torch

from avshared.crema_d import EMOTIONS
from avshared.features.audio import LogMelConfig
from avshared.features.store import FeatureStore
from avshared.features.video import FaceFramesConfig

logger = logging.getLogger(__name__)

#: Bumped when the specification's layout changes, so that a reader can refuse an older one.
SPEC_VERSION = 1
#: How frames are picked; avshared.features.video.sample_frame_indices implements it.
FRAME_SAMPLING = "frame k of n: the middle frame of the k-th of n equal spans of the clip (window)"


def _parameters(config_class: type, attrs: dict[str, Any]) -> dict[str, Any]:
    """The fields of a feature config dataclass as saved in a store's attrs (checked by building
    the config, so that a store made by other code fails here rather than at prediction)."""
    names = [field.name for field in fields(config_class)]
    missing = [name for name in names if name not in attrs]
    if missing:
        raise ValueError(
            f"the feature store lacks the extraction parameters {missing}, so prediction could "
            "not reproduce its features: re-run the features pipeline (kedro run "
            "--pipelines=features), then train again"
        )
    values = {name: attrs[name] for name in names}
    config_class(**values)
    return values


def build_model_spec(
    *,
    config: dict[str, Any],
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> dict[str, Any]:
    """What a reload of the phase's model needs: model kind, modalities, ModelConfig, emotion
    labels, the feature parameters and spectrogram normalisation used in training, the frame
    sampling, the prediction window, phase, data source and the phase's MLflow run id.

    Under ``split.strategy: actor_kfold`` or with several ``training.seeds`` the phase trained one
    model per fold and seed (under k-fold each with its own normalisation): the specification says
    so (``folds``, ``seeds``) and is not deployable (no statistics).
    """
    modalities = list(config["modalities"])
    folds, seeds = training_summary.get("folds", 1), training_summary.get("seeds", 1)
    one_model = "per_cell" not in training_summary
    spectrogram_stats = training_summary["spectrogram_stats"] if one_model else None
    features: dict[str, dict[str, Any]] = {}
    if "audio" in modalities:
        if log_mel_spectrograms is None:
            raise ValueError("an audio phase's specification needs its spectrograms")
        features["audio"] = _parameters(LogMelConfig, log_mel_spectrograms.attrs)
    if "video" in modalities:
        if face_frames is None:
            raise ValueError("a video phase's specification needs its face frames")
        features["video"] = _parameters(FaceFramesConfig, face_frames.attrs)
    # Long recordings are cut into windows of the audio's training duration; a video-only phase
    # uses the same length (CREMA-D's clips last 1-5 s), so that every phase cuts alike.
    window_s = features.get("audio", {}).get("duration_s", LogMelConfig().duration_s)
    return {
        "spec_version": SPEC_VERSION,
        "phase": config["phase"],
        "data_source": config["data_source"],
        "demo": config["data_source"] == "demo",
        "model_kind": config["model"]["kind"],
        "modalities": modalities,
        "model_config": training_summary["model_config"],
        "emotions": list(EMOTIONS),
        "target": config["target"]["kind"],
        "features": features,
        "spectrogram_stats": spectrogram_stats if "audio" in modalities else None,
        "frame_sampling": FRAME_SAMPLING,
        "window_s": window_s,
        "mlflow_run_id": training_summary["mlflow_run_id"],
        "folds": folds,
        "seeds": seeds,
    }


def package_media_model(
    model_spec: dict[str, Any], model_weights: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """The phase's media-in model for the catalog's ``<phase>.media_model``
    (avshared.datasets.media_model), which logs it into the phase's MLflow run and registers it."""
    return {"spec": model_spec, "weights": model_weights}
