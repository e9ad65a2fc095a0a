"""What the shared encoder learns: attention, alignment of the senses, rollouts, maps and the
crowd's disagreement, per two-modality phase (one template, namespaced)."""

from .pipeline import analysed_phases, create_phase_pipeline, create_pipeline

__all__ = ["analysed_phases", "create_phase_pipeline", "create_pipeline"]
