"""The training engine: Lightning module and data module, callbacks, devices, checkpoints, the
curriculum and equal-treatment options, the grid of cells (``cells``: fold x seed), and
``phase.train_model`` / ``phase.evaluate_model`` (``folds.train_cells`` / ``folds.evaluate_cells``
per cell, ``folds.gather_cells`` to pool the stored cells). Nothing about Kedro:
the training pipeline's nodes (avshared.pipelines.training) call it with the catalog's datasets.
"""
