"""Nodes of the reporting pipeline: every trained phase, trivial baselines and human raters, scored
on the same test clips and compared in one table, with paired tests and figures. The catalog logs
the tables and figures to MLflow (kedro-mlflow's MlflowArtifactDataset): no node calls MLflow.

The nodes are the library's functions, named here for the pipeline: the systems
(``avshared.evaluation.systems``), the unimodal ensembles (``avshared.evaluation.ensembles``), their
scores, comparisons and tables (``avshared.evaluation.tables``, on ``scoring`` and
``statistics``), the grid of cells behind each model row (``avshared.evaluation.grid``) and the
figures (``avshared.evaluation.figures``).
"""

from __future__ import annotations

from avshared.evaluation.ensembles import build_unimodal_ensemble
from avshared.evaluation.figures import (
    plot_confusion_matrices,
    plot_per_emotion_f1,
    plot_training_curves,
)
from avshared.evaluation.grid import assess_training_budgets
from avshared.evaluation.systems import (
    check_split_protocol,
    collect_phase_metrics,
    detect_data_label,
    gather_model_predictions,
    human_rater_predictions,
    predict_reference_baselines,
    stack_predictions,
)
from avshared.evaluation.tables import (
    collect_training_histories,
    compare_pairs,
    confusion_matrix_table,
    format_comparison_table,
    resolve_bootstrap,
    score_folds,
    score_per_emotion_and_level,
    score_systems,
)

__all__ = [
    "assess_training_budgets",
    "build_unimodal_ensemble",
    "check_split_protocol",
    "collect_phase_metrics",
    "collect_training_histories",
    "compare_pairs",
    "confusion_matrix_table",
    "detect_data_label",
    "format_comparison_table",
    "gather_model_predictions",
    "human_rater_predictions",
    "plot_confusion_matrices",
    "plot_per_emotion_f1",
    "plot_training_curves",
    "predict_reference_baselines",
    "resolve_bootstrap",
    "score_folds",
    "score_per_emotion_and_level",
    "score_systems",
    "stack_predictions",
]
