"""Training and evaluation phases (video, audio, bimodal, baseline): one template, namespaced."""

from .pipeline import DEFAULT_PHASES, PHASE_MODALITIES, create_phase_pipeline, create_pipeline

__all__ = ["DEFAULT_PHASES", "PHASE_MODALITIES", "create_phase_pipeline", "create_pipeline"]
