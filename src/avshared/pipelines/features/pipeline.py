"""Wiring of the ``features`` pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_features_report,
    compute_spectrogram_stats,
    extract_face_frames,
    extract_log_mel_spectrograms,
    plot_features_example,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=extract_log_mel_spectrograms,
                inputs=["clip_manifest", "params:features.audio", "params:features.extraction"],
                outputs="log_mel_spectrograms",
                name="extract_log_mel_spectrograms",
            ),
            Node(
                func=extract_face_frames,
                inputs=["clip_manifest", "params:features.video", "params:features.extraction"],
                outputs="face_frames",
                name="extract_face_frames",
            ),
            Node(
                func=compute_spectrogram_stats,
                inputs=["log_mel_spectrograms", "split", "params:features.normalisation"],
                outputs="spectrogram_stats",
                name="compute_spectrogram_stats",
            ),
            Node(
                func=build_features_report,
                inputs=["clip_manifest", "log_mel_spectrograms", "face_frames"],
                outputs="features_report",
                name="build_features_report",
            ),
            Node(
                func=plot_features_example,
                inputs=[
                    "log_mel_spectrograms",
                    "face_frames",
                    "params:features.example",
                    "params:crema_d_root",
                ],
                outputs="features_example",
                name="plot_features_example",
            ),
        ]
    )
