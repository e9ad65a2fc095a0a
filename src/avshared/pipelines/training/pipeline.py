"""The training template, instantiated once per phase under the phase's namespace.

Each phase's datasets are ``<phase>.<name>`` (``bimodal.model_weights``, ``bimodal.metrics``, ...:
the catalog's ``{phase}.*`` factories), its parameters are ``training.defaults`` merged with
``training.phases.<phase>`` and ``training.seeds``, and it reads the shared upstream datasets
(clip_manifest, crowd_labels, split and the features of its modalities) under their own names.
``<phase>.mlflow_run`` is put in the catalog by avshared.hooks.tracking.PhaseRunsHook: the phase's
MLflow run, or None; the hook also points the phase's kedro-mlflow datasets (``test_scores``,
``confusion_matrix``) at that run.

The phase trains one model per cell (fold x seed, avshared.training.cells). Its nodes carry tags
that run one part of it (docs/grid.md):

- ``cell``: plan, train and evaluate the cells of the run (every cell, or the one
  ``training.only_fold`` / ``training.only_seed`` name), each stored as a partition of the
  ``<phase>.cell_*`` datasets: ``kedro run --pipelines=<phase> --tags=cell --params=...``;
- ``gather``: plan, pool every stored cell into the phase's outputs, figures, scores and model;
- ``evaluate``: the evaluation of the cells, so that ``--tags=evaluate,gather`` evaluates the
  stored models again from the catalog alone.
"""

from functools import partial

from kedro.pipeline import Node, Pipeline

from avshared.training.cells import CELL_TAG
from avshared.training.phases import DEFAULT_PHASES, PHASE_MODALITIES

from .nodes import (
    build_model_spec,
    build_targets,
    evaluate_cells,
    gather_cells,
    package_media_model,
    plan_cells,
    plot_confusion_matrix,
    predict_validation,
    resolve_phase_config,
    summarise_test_scores,
    train_cells,
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
#: The tags of the template's parts besides CELL_TAG (module docstring).
GATHER_TAG, EVALUATE_TAG = "gather", "evaluate"
#: The cells' results, one partition per cell (``fold_<k>.seed_<i>``).
CELL_DATASETS: tuple[str, ...] = (
    "cell_weights",
    "cell_training_summaries",
    "cell_histories",
    "cell_predictions",
    "cell_metrics",
)


def create_phase_pipeline(phase: str) -> Pipeline:
    """The template under namespace ``phase``: config, targets, the plan of cells, their training
    and evaluation, the gathering of the stored cells, the scores and figure for MLflow, the media
    model."""
    if phase not in PHASE_MODALITIES:
        raise ValueError(f"unknown phase {phase!r}; phases: {sorted(PHASE_MODALITIES)}")
    features = {name: name for m in PHASE_MODALITIES[phase] for name in MODALITY_INPUTS[m]}
    stores = {name: name for name in features if name not in TRAINING_ONLY_INPUTS}
    planning = (CELL_TAG, GATHER_TAG)
    template = Pipeline(
        [
            Node(
                partial(resolve_phase_config, phase=phase, modalities=PHASE_MODALITIES[phase]),
                inputs=[
                    "params:training.defaults",
                    "params:training.seeds",
                    "params:phase",
                    "params:crema_d_root",
                ],
                outputs="config",
                name="resolve_phase_config",
                tags=planning,
            ),
            Node(
                build_targets,
                inputs=["clip_manifest", "crowd_labels", "split", "config"],
                outputs=["targets", "target_summary"],
                name="build_targets",
                tags=planning,
            ),
            Node(
                plan_cells,
                inputs={
                    "targets": "targets",
                    "config": "config",
                    "only_fold": "params:training.only_fold",
                    "only_seed": "params:training.only_seed",
                    **stores,
                },
                outputs="cell_plan",
                name="plan_cells",
                tags=planning,
            ),
            Node(
                train_cells,
                inputs={
                    "targets": "targets",
                    "target_summary": "target_summary",
                    "config": "config",
                    "plan": "cell_plan",
                    "mlflow_run": "mlflow_run",
                    **features,
                    **{name: name for name in PRETRAINED_INPUTS},
                },
                outputs=["cell_weights", "cell_histories", "cell_training_summaries"],
                name="train_cells",
                tags=CELL_TAG,
            ),
            Node(
                evaluate_cells,
                inputs={
                    "cell_weights": "cell_weights",
                    "cell_training_summaries": "cell_training_summaries",
                    "targets": "targets",
                    "plan": "cell_plan",
                    **stores,
                },
                outputs=["cell_predictions", "cell_metrics"],
                name="evaluate_cells",
                tags=(CELL_TAG, EVALUATE_TAG),
            ),
            Node(
                gather_cells,
                inputs={
                    "plan": "cell_plan",
                    "config": "config",
                    "target_summary": "target_summary",
                    **{name: name for name in CELL_DATASETS},
                    "mlflow_run": "mlflow_run",
                },
                outputs=[
                    "model_weights",
                    "training_history",
                    "training_summary",
                    "test_predictions",
                    "metrics",
                ],
                name="gather_cells",
                tags=GATHER_TAG,
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
                tags=GATHER_TAG,
            ),
            Node(
                summarise_test_scores,
                inputs="metrics",
                outputs="test_scores",
                name="summarise_test_scores",
                tags=GATHER_TAG,
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
                tags=GATHER_TAG,
            ),
            Node(
                package_media_model,
                inputs=["model_spec", "model_weights"],
                outputs="media_model",
                name="package_media_model",
                tags=GATHER_TAG,
            ),
        ]
    )
    return Pipeline(
        template,
        namespace=phase,
        inputs={*SHARED_INPUTS, *features.values(), *PRETRAINED_INPUTS},
        parameters={
            "training.defaults": "training.defaults",
            "training.seeds": "training.seeds",
            "training.only_fold": "training.only_fold",
            "training.only_seed": "training.only_seed",
            "crema_d_root": "crema_d_root",
            "phase": f"training.phases.{phase}",
        },
        prefix_datasets_with_namespace=True,
    )


def create_pipeline(phases: tuple[str, ...] = DEFAULT_PHASES, **kwargs) -> Pipeline:
    """The phases' training and evaluation, from existing labels, split and features."""
    return sum((create_phase_pipeline(phase) for phase in phases), Pipeline([]))
