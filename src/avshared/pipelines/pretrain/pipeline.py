"""Wiring of the ``pretrain`` pipeline.

``pretrain.mlflow_run`` is put in the catalog by avshared.hooks.tracking.PhaseRunsHook (a child run
named ``pretrain``), which also points ``pretrain.reconstructions`` at it. The extra recordings'
features (``pretrain_extra_log_mel_spectrograms``, ``pretrain_extra_face_frames``) are made by the
features pipeline's own extraction nodes, reused on ``pretrain_extra_recordings`` by the registry
(avshared.pipeline_registry.extra_recording_features).
"""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    find_extra_recordings,
    plot_reconstructions,
    pretrain_encoders,
    resolve_pretrain_config,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                resolve_pretrain_config,
                inputs=["params:training.defaults", "params:pretrain", "params:crema_d_root"],
                outputs="pretrain.config",
                name="resolve_pretrain_config",
            ),
            Node(
                find_extra_recordings,
                inputs="params:pretrain.extra_inputs",
                outputs="pretrain_extra_recordings",
                name="find_extra_recordings",
            ),
            Node(
                pretrain_encoders,
                inputs={
                    "split": "split",
                    "config": "pretrain.config",
                    "log_mel_spectrograms": "log_mel_spectrograms",
                    "face_frames": "face_frames",
                    "spectrogram_stats": "spectrogram_stats",
                    "extra_log_mel_spectrograms": "pretrain_extra_log_mel_spectrograms",
                    "extra_face_frames": "pretrain_extra_face_frames",
                    "mlflow_run": "pretrain.mlflow_run",
                },
                outputs=[
                    "pretrained_encoder",
                    "pretrain.training_history",
                    "pretrain_summary",
                    "pretrain.reconstruction_examples",
                ],
                name="pretrain_encoders",
            ),
            Node(
                plot_reconstructions,
                inputs="pretrain.reconstruction_examples",
                outputs="pretrain.reconstructions",
                name="plot_reconstructions",
            ),
        ]
    )
