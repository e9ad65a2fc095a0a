"""The ``split`` pipeline: clip manifest -> train/val/test (speaker-independent by default)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
