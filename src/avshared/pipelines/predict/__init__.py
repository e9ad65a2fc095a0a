"""The ``predict`` pipeline: emotion predictions for new recordings with a trained phase."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
