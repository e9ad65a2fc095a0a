"""Equal treatment of the compared models: a separate-encoder baseline of the shared model's size.

The same-width baseline (``baseline``) has one encoder per modality, so about 1.6x the parameters of
the shared model; a better score could come from size alone. ``baseline_matched`` narrows every
encoder and embedding (``model.dim``) until the separate-encoder model has as many parameters as the
shared model of the same modalities would have: ``match_parameters: shared`` in its phase
parameters (``training.phases.baseline_matched``). Depth, heads, patches and every training
setting stay those of the other rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from avshared.features.store import FeatureStore
from avshared.models import ModelConfig, build_model, count_parameters
from avshared.training.phase import sized_model_config
from avshared.training.schema import MATCHABLE_KINDS


def matched_width(
    kind: str, reference_kind: str, modalities: list[str], config: ModelConfig
) -> tuple[int, int, int]:
    """The ``dim`` (a multiple of ``heads``) at which a ``kind`` model has the parameter count
    closest to the ``reference_kind`` model of width ``config.dim``.

    Returns (dim, parameters of ``kind`` at that dim, parameters of the reference).
    """
    if reference_kind not in MATCHABLE_KINDS:
        raise ValueError(
            f"match_parameters {reference_kind!r} unknown; use one of {MATCHABLE_KINDS}"
        )
    target = count_parameters(build_model(reference_kind, modalities, config))
    best: tuple[int, int] | None = None
    for dim in range(config.heads, config.dim + 1, config.heads):
        count = count_parameters(build_model(kind, modalities, replace(config, dim=dim)))
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (dim, count)
        if count > target:
            break
    assert best is not None
    return best[0], best[1], target


def apply_parameter_matching(
    config: dict[str, Any], stores: Mapping[str, FeatureStore]
) -> dict[str, Any]:
    """``config`` with ``model.dim`` narrowed when ``match_parameters`` names a model kind (a no-op
    otherwise); ``matched_parameters`` records the reference kind and both counts."""
    reference = config.get("match_parameters")
    if not reference:
        return config
    model_config = sized_model_config(config, stores)
    dim, count, target = matched_width(
        config["model"]["kind"], reference, config["modalities"], model_config
    )
    return {
        **config,
        "model": {**config["model"], "dim": dim},
        "matched_parameters": {"reference": reference, "reference_count": target, "count": count},
    }
