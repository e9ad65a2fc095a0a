"""Evaluation and comparison: the phases, trivial baselines and human raters on the same clips."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
