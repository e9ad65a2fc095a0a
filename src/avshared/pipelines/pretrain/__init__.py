"""The ``pretrain`` pipeline: masked autoencoding of the encoders, per fold, on training clips."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
