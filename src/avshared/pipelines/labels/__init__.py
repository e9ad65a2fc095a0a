"""Crowd-rating aggregation: CREMA-D ratings -> crowd_labels (clip x modality), human_accuracy."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
