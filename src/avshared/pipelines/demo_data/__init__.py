"""Demo-data pipeline: a small synthetic corpus in CREMA-D's layout, formats and faults."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
