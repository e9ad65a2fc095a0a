"""The training engine: Lightning module and data module, callbacks, devices, checkpoints, the
curriculum and equal-treatment options, folds, and ``phase.train_model`` / ``phase.evaluate_model``
(``folds.train_phase`` / ``folds.evaluate_phase`` over the folds of a split). Nothing about Kedro:
the training pipeline's nodes (avshared.pipelines.training) call it with the catalog's datasets.
"""
