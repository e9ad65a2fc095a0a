"""The training template, instantiated once per phase under the phase's namespace.

Each phase's datasets are ``<phase>.<name>`` (``bimodal.model_weights``, ``bimodal.metrics``, ...:
the catalog's ``{phase}.*`` factories), its parameters are ``training.defaults`` merged with
``training.phases.<phase>``, and it reads the shared upstream datasets (clip_manifest, crowd_labels,
split and the features of its modalities) under their own names. ``<phase>.mlflow_run`` is put in
the catalog by avshared.hooks.tracking.PhaseRunsHook: the phase's MLflow run, or None; the hook
also points the phase's kedro-mlflow datasets (``test_scores``, ``confusion_matrix``) at that run.
"""

from functools import partial

from kedro.pipeline import Node, Pipeline

from avshared.training.phases import DEFAULT_PHASES, PHASE_MODALITIES

from .nodes import (
    build_model_spec,
    build_targets,
    evaluate_model,
    package_media_model,
    plot_confusion_matrix,
    predict_validation,
    resolve_phase_config,
    summarise_test_scores,
    train_model,
)

#: Datasets the template reads that other pipelines make; they keep their names in every phase.
SHARED_INPUTS: tuple[str, ...] = ("clip_manifest", "crowd_labels", "split")
#: The feature datasets of each modality (also the node arguments they are passed as).
MODALITY_INPUTS: dict[str, tuple[str, ...]] = {
    "audio": ("log_mel_spectrograms", "spectrogram_stats"),
    "video": ("face_frames",),
}
#: The statistics go into the training summary; evaluation takes them from there.
TRAINING_ONLY_INPUTS: tuple[str, ...] = ("spectrogram_stats",)
#: The pretrain pipeline's outputs, which a phase starts from with ``init: pretrain``. Optional
#: datasets (avshared.datasets.optional: None when the pretrain pipeline never ran), so that a phase
#: that starts from scratch needs no pretraining; memory-mapped, so that it costs nothing either.
PRETRAINED_INPUTS: tuple[str, ...] = ("pretrained_encoder", "pretrain_summary")


def create_phase_pipeline(phase: str) -> Pipeline:
    """The template under namespace ``phase``: config, targets, training, evaluation, the scores
    and figure for MLflow, the media model."""
    if phase not in PHASE_MODALITIES:
        raise ValueError(f"unknown phase {phase!r}; phases: {sorted(PHASE_MODALITIES)}")
    features = {name: name for m in PHASE_MODALITIES[phase] for name in MODALITY_INPUTS[m]}
    stores = {name: name for name in features if name not in TRAINING_ONLY_INPUTS}
    template = Pipeline(
        [
            Node(
                partial(resolve_phase_config, phase=phase, modalities=PHASE_MODALITIES[phase]),
                inputs=["params:training.defaults", "params:phase", "params:crema_d_root"],
                outputs="config",
                name="resolve_phase_config",
            ),
            Node(
                build_targets,
                inputs=["clip_manifest", "crowd_labels", "split", "config"],
                outputs=["targets", "target_summary"],
                name="build_targets",
            ),
            Node(
                train_model,
                inputs={
                    "targets": "targets",
                    "target_summary": "target_summary",
                    "config": "config",
                    "mlflow_run": "mlflow_run",
                    **features,
                    **{name: name for name in PRETRAINED_INPUTS},
                },
                outputs=["model_weights", "training_history", "training_summary"],
                name="train_model",
            ),
            Node(
                evaluate_model,
                inputs={
                    "model_weights": "model_weights",
                    "targets": "targets",
                    "training_summary": "training_summary",
                    **stores,
                },
                outputs=["test_predictions", "metrics"],
                name="evaluate_model",
            ),
            Node(
                predict_validation,
                inputs={
                    "model_weights": "model_weights",
                    "targets": "targets",
                    "training_summary": "training_summary",
                    **stores,
                },
                outputs="validation_predictions",
                name="predict_validation",
            ),
            Node(
                plot_confusion_matrix,
                inputs=["test_predictions", "metrics"],
                outputs="confusion_matrix",
                name="plot_confusion_matrix",
            ),
            Node(
                summarise_test_scores,
                inputs="metrics",
                outputs="test_scores",
                name="summarise_test_scores",
            ),
            # What prediction needs to rebuild the model and its inputs
            # (avshared.inference.prediction).
            Node(
                build_model_spec,
                inputs={
                    "config": "config",
                    "training_summary": "training_summary",
                    **stores,
                },
                outputs="model_spec",
                name="build_model_spec",
            ),
            Node(
                package_media_model,
                inputs=["model_spec", "model_weights"],
                outputs="media_model",
                name="package_media_model",
            ),
        ]
    )
    return Pipeline(
        template,
        namespace=phase,
        inputs={*SHARED_INPUTS, *features.values(), *PRETRAINED_INPUTS},
        parameters={
            "training.defaults": "training.defaults",
            "crema_d_root": "crema_d_root",
            "phase": f"training.phases.{phase}",
        },
        prefix_datasets_with_namespace=True,
    )


def create_pipeline(phases: tuple[str, ...] = DEFAULT_PHASES, **kwargs) -> Pipeline:
    """The phases' training and evaluation, from existing labels, split and features."""
    return sum((create_phase_pipeline(phase) for phase in phases), Pipeline([]))
