"""Training and evaluation phases (video, audio, bimodal, baseline): one template, namespaced."""

from .pipeline import PHASE_MODALITIES, create_phase_pipeline, create_pipeline

__all__ = ["PHASE_MODALITIES", "create_phase_pipeline", "create_pipeline"]
