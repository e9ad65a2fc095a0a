"""The phases: the one list of them, and the modalities each trains on.

training.phases.<phase> in parameters_training.yml overrides the shared defaults for a phase (model
kind, sizes, options); the training pipeline instantiates its template once per phase, and
reporting compares the phases' results.
"""

from __future__ import annotations

#: The phases and their inputs: the one list of phases. training.phases.<phase> in
#: parameters_training.yml overrides the shared defaults for that phase (model kind, sizes, ...).
PHASE_MODALITIES: dict[str, tuple[str, ...]] = {
    "video": ("video",),
    "audio": ("audio",),
    "bimodal": ("audio", "video"),
    "baseline": ("audio", "video"),
    # Equal treatment, label sources and the phase path: rows beside bimodal and baseline.
    "baseline_matched": ("audio", "video"),
    "bimodal_perceived_majority": ("audio", "video"),
    "bimodal_perceived_soft": ("audio", "video"),
    "bimodal_curriculum": ("audio", "video"),
    # Started from the pretrain pipeline's encoders (init: pretrain): each beside its scratch row.
    "bimodal_pretrained": ("audio", "video"),
    "baseline_pretrained": ("audio", "video"),
    # Sharing x fusion: the shared encoder fused late (shared_late) and mid-way (shared_mid).
    "bimodal_late": ("audio", "video"),
    "bimodal_mid": ("audio", "video"),
    # Training strategies against modality imbalance (avshared.training.strategies).
    "bimodal_alternating": ("audio", "video"),
    "bimodal_unimodal_auxiliary": ("audio", "video"),
    "baseline_ogm_ge": ("audio", "video"),
}
#: The phases of `kedro run`; `kedro run --pipelines=comparison` adds the label-source,
#: curriculum, sharing x fusion and strategy rows (every phase of PHASE_MODALITIES).
DEFAULT_PHASES: tuple[str, ...] = ("video", "audio", "bimodal", "baseline", "baseline_matched")
