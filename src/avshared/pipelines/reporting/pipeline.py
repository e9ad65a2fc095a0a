"""The reporting pipeline: test predictions of every phase -> comparison table, figures, MLflow."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from avshared.pipelines.training import DEFAULT_PHASES

from .nodes import (
    collect_phase_metrics,
    collect_training_histories,
    confusion_matrix_table,
    detect_data_label,
    format_comparison_table,
    gather_model_predictions,
    human_rater_predictions,
    log_report_to_mlflow,
    plot_confusion_matrices,
    plot_per_emotion_f1,
    plot_training_curves,
    predict_reference_baselines,
    score_per_emotion_and_level,
    score_systems,
    stack_predictions,
)

#: The training phases compared by default, in table order (each provides
#: `{phase}.test_predictions`, `{phase}.metrics` and `{phase}.training_history`).
PHASES: tuple[str, ...] = DEFAULT_PHASES


def create_pipeline(phases: Sequence[str] = PHASES, **kwargs) -> Pipeline:
    """Score every phase, the trivial baselines and the human raters on the test clips, write the
    comparison table and figures to data/08_reporting and log them to the active MLflow run."""

    def of_each_phase(dataset: str) -> dict[str, str]:
        return {phase: f"{phase}.{dataset}" for phase in phases}

    return Pipeline(
        [
            Node(
                collect_phase_metrics,
                inputs=of_each_phase("metrics"),
                outputs="phase_metrics",
                name="collect_phase_metrics",
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
                inputs=[
                    "all_test_predictions",
                    "crowd_labels",
                    "params:reporting.bootstrap",
                ],
                outputs="comparison_scores",
                name="score_systems",
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
                inputs=[
                    "comparison_scores",
                    "phase_metrics",
                    "params:reporting.bootstrap",
                    "report_data_label",
                ],
                outputs=["comparison_table", "comparison_table_markdown"],
                name="format_comparison_table",
            ),
            Node(
                collect_training_histories,
                inputs=of_each_phase("training_history"),
                outputs="training_histories",
                name="collect_training_histories",
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
            Node(
                log_report_to_mlflow,
                inputs={
                    "comparison_table": "comparison_table",
                    "comparison_markdown": "comparison_table_markdown",
                    "confusion": "confusion_matrices",
                    "per_emotion": "per_emotion_scores",
                    "histories": "training_histories",
                    "data_label": "report_data_label",
                },
                outputs=None,
                name="log_report_to_mlflow",
            ),
        ]
    )
