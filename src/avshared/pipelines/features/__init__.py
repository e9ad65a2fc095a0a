"""The ``features`` pipeline: log-mel spectrograms and face frames per clip, stored versioned."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
