"""Ingestion pipeline: CREMA-D root -> clip manifest + rejected clips."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
