"""The reporting pipeline: test predictions of every phase -> comparison table, paired tests,
per-fold scores and figures (logged to MLflow by their catalog entries)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from kedro.pipeline import Node, Pipeline

from avshared.evaluation.ensembles import COMBINED_PHASES, ENSEMBLE_ROWS
from avshared.training.phases import DEFAULT_PHASES

from .nodes import (
    assess_training_budgets,
    build_unimodal_ensemble,
    check_split_protocol,
    collect_phase_metrics,
    collect_training_histories,
    compare_pairs,
    confusion_matrix_table,
    detect_data_label,
    format_comparison_table,
    gather_model_predictions,
    human_rater_predictions,
    plot_confusion_matrices,
    plot_per_emotion_f1,
    plot_training_curves,
    predict_reference_baselines,
    resolve_bootstrap,
    score_folds,
    score_per_emotion_and_level,
    score_systems,
    stack_predictions,
)

#: The training phases compared by default, in table order (each provides
#: `{phase}.test_predictions`, `{phase}.metrics` and `{phase}.training_history`).
PHASES: tuple[str, ...] = DEFAULT_PHASES


def create_pipeline(phases: Sequence[str] = PHASES, **kwargs) -> Pipeline:
    """Score every phase, the unimodal ensembles (when the audio and video phases are among
    ``phases``), the trivial baselines and the human raters on the test clips, write the
    comparison table, paired comparisons, per-fold scores and figures to data/08_reporting; their
    catalog entries log them to the MLflow run of `kedro run`."""
    ensembles = ensemble_pipeline() if set(COMBINED_PHASES) <= set(phases) else Pipeline([])
    rows = [*phases, *(ENSEMBLE_ROWS if ensembles.nodes else ())]

    def of_each_phase(dataset: str) -> dict[str, str]:
        return {phase: f"{phase}.{dataset}" for phase in rows}

    return ensembles + Pipeline(
        [
            Node(
                collect_phase_metrics,
                inputs=of_each_phase("metrics"),
                outputs="phase_metrics",
                name="collect_phase_metrics",
            ),
            Node(
                check_split_protocol,
                inputs=["split", "phase_metrics"],
                outputs="report_protocol",
                name="check_split_protocol",
            ),
            Node(
                resolve_bootstrap,
                inputs=["params:reporting.bootstrap", "report_protocol"],
                outputs="report_bootstrap",
                name="resolve_bootstrap",
            ),
            Node(
                detect_data_label,
                inputs=["params:crema_d_root", "phase_metrics"],
                outputs="report_data_label",
                name="detect_data_label",
            ),
            Node(
                gather_model_predictions,
                inputs={
                    "phase_metrics": "phase_metrics",
                    **of_each_phase("test_predictions"),
                },
                outputs="model_test_predictions",
                name="gather_model_predictions",
            ),
            Node(
                predict_reference_baselines,
                inputs=["split", "clip_manifest", "params:reporting.chance_seed"],
                outputs="reference_test_predictions",
                name="predict_reference_baselines",
            ),
            Node(
                human_rater_predictions,
                inputs=["crowd_labels", "split"],
                outputs="human_test_predictions",
                name="human_rater_predictions",
            ),
            Node(
                stack_predictions,
                inputs=[
                    "model_test_predictions",
                    "reference_test_predictions",
                    "human_test_predictions",
                ],
                outputs="all_test_predictions",
                name="stack_predictions",
            ),
            Node(
                score_systems,
                inputs=["all_test_predictions", "crowd_labels", "report_bootstrap"],
                outputs="comparison_scores",
                name="score_systems",
            ),
            Node(
                score_folds,
                inputs="all_test_predictions",
                outputs="fold_scores",
                name="score_folds",
            ),
            Node(
                compare_pairs,
                inputs=[
                    "all_test_predictions",
                    "report_bootstrap",
                    "params:reporting.paired_comparisons",
                ],
                outputs="paired_comparisons",
                name="compare_pairs",
            ),
            Node(
                score_per_emotion_and_level,
                inputs="all_test_predictions",
                outputs=["per_emotion_scores", "per_level_scores"],
                name="score_per_emotion_and_level",
            ),
            Node(
                confusion_matrix_table,
                inputs="all_test_predictions",
                outputs="confusion_matrices",
                name="confusion_matrix_table",
            ),
            Node(
                format_comparison_table,
                inputs={
                    "scores": "comparison_scores",
                    "phase_metrics": "phase_metrics",
                    "bootstrap": "report_bootstrap",
                    "data_label": "report_data_label",
                    "protocol": "report_protocol",
                    "fold_scores": "fold_scores",
                    "paired": "paired_comparisons",
                    "budgets": "training_budgets",
                },
                outputs=["comparison_table", "comparison_table_markdown"],
                name="format_comparison_table",
            ),
            Node(
                collect_training_histories,
                inputs={phase: f"{phase}.training_history" for phase in phases},
                outputs="training_histories",
                name="collect_training_histories",
            ),
            Node(
                assess_training_budgets,
                inputs=["training_histories", "phase_metrics"],
                outputs="training_budgets",
                name="assess_training_budgets",
            ),
            Node(
                plot_confusion_matrices,
                inputs=["confusion_matrices", "report_data_label"],
                outputs="confusion_matrix_figures",
                name="plot_confusion_matrices",
            ),
            Node(
                plot_per_emotion_f1,
                inputs=["per_emotion_scores", "report_data_label"],
                outputs="per_emotion_f1_figure",
                name="plot_per_emotion_f1",
            ),
            Node(
                plot_training_curves,
                inputs=["training_histories", "report_data_label"],
                outputs="training_curves_figure",
                name="plot_training_curves",
            ),
        ]
    )


def ensemble_pipeline() -> Pipeline:
    """The unimodal ensemble rows from the audio and video phases' predictions, each written as a
    phase's outputs under its own namespace (``unimodal_ensemble.test_predictions``,
    ``unimodal_ensemble.metrics``, ...; ``avshared.evaluation.ensembles``)."""
    combined = {
        f"{phase}.{dataset}"
        for phase in COMBINED_PHASES
        for dataset in ("test_predictions", "validation_predictions", "metrics")
    }
    return sum(
        (
            Pipeline(
                [
                    Node(
                        partial(build_unimodal_ensemble, row=row),
                        inputs={
                            "audio_test": "audio.test_predictions",
                            "video_test": "video.test_predictions",
                            "audio_validation": "audio.validation_predictions",
                            "video_validation": "video.validation_predictions",
                            "audio_metrics": "audio.metrics",
                            "video_metrics": "video.metrics",
                            "weight_step": "params:weight_step",
                        },
                        outputs=["test_predictions", "metrics"],
                        name="build_unimodal_ensemble",
                    )
                ],
                namespace=row,
                inputs=combined,
                parameters={"weight_step": "reporting.unimodal_ensemble.weight_step"},
                prefix_datasets_with_namespace=True,
            )
            for row in ENSEMBLE_ROWS
        ),
        Pipeline([]),
    )
