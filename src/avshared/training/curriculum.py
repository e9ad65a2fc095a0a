"""The phase path as an option: train video, then audio, then bimodal, each warm-started.

With ``curriculum: [video, audio, bimodal]`` in a phase's parameters (the ``bimodal_curriculum``
phase), the phase trains each stage in turn on the stage's modalities with the phase's settings, and
starts each stage's shared encoder, and the patch embeddings it has in common with the stage before
(the audio embedding from audio to bimodal), from the weights the stage before ended with. The
classification head starts afresh in every stage. Only the last stage is evaluated and reported, in
a row beside the independently trained bimodal model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch

from avshared.models import parse_modalities

#: State-dict prefixes carried from one stage to the next: the encoder and the embeddings.
CARRIED_PREFIXES: tuple[str, ...] = ("encoder.", "embeddings.")


def carried_weights(
    previous: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """The entries of ``previous`` (a stage's final state_dict) that ``model`` starts from: the
    encoder's and the embeddings', where ``model`` has an entry of that name and shape."""
    own = model.state_dict()
    return {
        name: tensor.detach().clone()
        for name, tensor in previous.items()
        if name.startswith(CARRIED_PREFIXES) and name in own and own[name].shape == tensor.shape
    }


class WarmStart(L.Callback):
    """Loads carried weights into the model before training starts.

    Runs at ``setup``, which Lightning calls before it restores a checkpoint, so a resumed stage
    continues from its checkpoint rather than from the warm start.
    """

    def __init__(self, previous: Mapping[str, torch.Tensor]) -> None:
        self.previous = previous

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = pl_module.model
        weights = carried_weights(self.previous, model)
        if not weights:
            raise ValueError(
                "the previous curriculum stage shares no encoder or embedding weights with this "
                "stage: check the model parameters are the same in every stage"
            )
        model.load_state_dict(weights, strict=False)


def curriculum_stages(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stage configs of a phase with ``curriculum`` (else ``[config]``): the phase's config
    with each stage's modalities, ``curriculum_stage`` and a checkpoint folder per stage. The last
    stage must have the phase's own modalities."""
    stages: Sequence[str] | None = config.get("curriculum")
    if not stages:
        return [dict(config)]
    modalities = [list(parse_modalities(stage)) for stage in stages]
    if modalities[-1] != list(config["modalities"]):
        raise ValueError(
            f"training.phases.{config['phase']}.curriculum {list(stages)} must end with the "
            f"phase's own modalities {config['modalities']}"
        )
    return [
        {
            **config,
            "modalities": stage_modalities,
            "curriculum_stage": f"{index}_{stage}",
            "checkpoint_dir": f"{config['checkpoint_dir']}/curriculum_{index}_{stage}",
        }
        for index, (stage, stage_modalities) in enumerate(zip(stages, modalities, strict=True))
    ]
