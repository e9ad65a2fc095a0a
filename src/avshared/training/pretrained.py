"""Where a phase's model starts: ``init`` in a phase's parameters (``training.defaults.init``).

- ``scratch`` (the default): as built and seeded (``avshared.models.initialisation``).
- ``pretrain``: the encoder(s) and embeddings the pretrain pipeline made last
  (``pretrained_encoder``, with its ``pretrain_summary``; ``avshared.training.pretrain``): the
  phase's fold k starts from the pretraining of fold k, and only after checking that none of the
  clips pretrained on is one the phase validates or tests on (the split may have changed since).
- a path to a checkpoint file (``CHECKPOINT_SUFFIXES``): a ViT state dict (timm / AST ``vit_*``,
  mapped by ``avshared.models.vit_checkpoint``), or a ``pretrained_encoder`` file (its
  ``fold_<k>.<model kind>.`` entries; nothing then says which clips it saw: keep such a file to the
  split it was pretrained on).

The weights are loaded after the model is built and seeded, before Lightning restores a checkpoint,
so a resumed run continues from its checkpoint. The head, and whatever the source lacks, stay as
initialised; the report says what was loaded and what was not.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from avshared.models.vit_checkpoint import load_vit_into_classifier, read_vit_state_dict

logger = logging.getLogger(__name__)

SCRATCH, PRETRAIN = "scratch", "pretrain"
#: The named initialisations; anything else must be a checkpoint file.
INITIALISATIONS: tuple[str, ...] = (SCRATCH, PRETRAIN)
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".safetensors")
PRETRAIN_COMMAND = "kedro run --pipelines=pretrain"
#: State-dict names of a pretrained_encoder file start with the fold's prefix.
FOLD_PREFIX = "fold_"


@dataclass(frozen=True)
class InitialWeights:
    """What a phase's fold starts from: ``weights`` named as the classifier's parameters
    (``layout`` "classifier") or a ViT state dict (``layout`` "vit"); ``source`` says where they
    come from, ``identity`` changes whenever they do (a resumed run must start from the same)."""

    source: str
    identity: str
    weights: Mapping[str, Tensor]
    layout: str


def check_init(init: str) -> str:
    """``init`` if it is ``scratch``, ``pretrain`` or an existing checkpoint file, else a
    ValueError that lists the choices."""
    if init in INITIALISATIONS:
        return init
    path = Path(init)
    if path.suffix in CHECKPOINT_SUFFIXES and path.is_file():
        return init
    found = "no such file" if path.suffix in CHECKPOINT_SUFFIXES else "not a checkpoint file"
    raise ValueError(
        f"init must be scratch, pretrain or the path of a checkpoint file "
        f"({', '.join(CHECKPOINT_SUFFIXES)}; relative to the project folder); {init!r} is {found}"
    )


#: Model kinds that start from another kind's pretraining: the shared encoder fused late has the
#: shared model's parameters, names included (``OneEncoderClassifier``).
PRETRAINED_AS: dict[str, str] = {"shared_late": "shared"}


def pretrained_kind(model_kind: str) -> str:
    """The ``pretrain.model_kinds`` entry a classifier of ``model_kind`` starts from."""
    return PRETRAINED_AS.get(model_kind, model_kind)


def initial_weights(
    init: str,
    *,
    fold: int,
    fold_targets: pd.DataFrame,
    model_kind: str,
    pretrained_encoder: Mapping[str, Tensor] | None = None,
    pretrain_summary: Mapping[str, Any] | None = None,
) -> InitialWeights | None:
    """The weights fold ``fold`` of a phase starts from (None for ``scratch``); ``fold_targets``:
    the fold's clips and their split, ``model_kind``: the phase's model kind."""
    if check_init(init) == SCRATCH:
        return None
    if init == PRETRAIN:
        if pretrained_encoder is None or pretrain_summary is None:
            raise ValueError(
                "init is pretrain, but there is no pretrained encoder: run "
                f"`{PRETRAIN_COMMAND}` first (or set init: scratch)"
            )
        _check_unseen(fold, fold_targets, pretrain_summary)
        source = (
            f"the pretrain pipeline's encoders (MLflow run {pretrain_summary['mlflow_run_id']})"
        )
        return _pretrained(pretrained_encoder, fold, model_kind, source)
    state = read_vit_state_dict(init)
    if any(name.startswith(FOLD_PREFIX) for name in state):
        logger.warning(
            "init: %s is a pretrained_encoder file; which clips it saw is not recorded in it, so "
            "nothing checks that it never saw this phase's validation or test clips",
            init,
        )
        return _pretrained(state, fold, model_kind, f"the pretrained encoders in {init}")
    return InitialWeights(f"the ViT checkpoint {init}", _tensor_identity(state), state, "vit")


def _check_unseen(fold: int, fold_targets: pd.DataFrame, summary: Mapping[str, Any]) -> None:
    """Refuse a pretraining that saw a clip the phase's fold validates or tests on."""
    folds = summary["per_fold"]
    if str(fold) not in folds:
        raise ValueError(
            f"the pretrained encoders were made for the folds {sorted(folds, key=int)} of another "
            f"split, not for fold {fold}: run `{PRETRAIN_COMMAND}` again on the current split"
        )
    pretrained_on = folds[str(fold)]
    # Extra recordings are named by a stem or a path: a CREMA-D clip among them has its id as stem.
    extra = {Path(name).stem for name in pretrained_on.get("extra_clips", [])}
    seen = set(pretrained_on["clips"]) | extra
    held_out = fold_targets.loc[fold_targets["split"] != "train"]
    leaked = held_out.loc[held_out["clip_id"].isin(seen)]
    if len(leaked):
        raise ValueError(
            f"the pretrained encoder of fold {fold} was pretrained on {len(leaked)} clips that "
            f"this phase validates or tests on (e.g. {leaked['clip_id'].head(3).tolist()}): the "
            f"split changed since pretraining; run `{PRETRAIN_COMMAND}` again (or init: scratch)"
        )


def _pretrained(
    state: Mapping[str, Tensor], fold: int, model_kind: str, source: str
) -> InitialWeights:
    model_kind = pretrained_kind(model_kind)
    prefix = f"{FOLD_PREFIX}{fold}.{model_kind}."
    weights = {n.removeprefix(prefix): t for n, t in state.items() if n.startswith(prefix)}
    if not weights:
        kinds = sorted({n.split(".")[1] for n in state if n.startswith(f"{FOLD_PREFIX}{fold}.")})
        raise ValueError(
            f"{source} hold no {model_kind} encoder for fold {fold} (only {kinds or 'none'}): add "
            f"{model_kind} to pretrain.model_kinds and run `{PRETRAIN_COMMAND}` on this split"
        )
    return InitialWeights(
        f"{source}, fold {fold}", _tensor_identity(weights), weights, "classifier"
    )


def _tensor_identity(state: Mapping[str, Tensor]) -> str:
    """SHA-256 of the tensors' names and bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        flat = state[name].detach().cpu().contiguous().flatten()
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def _parts(names: list[str]) -> list[str]:
    """Parameter names shortened to their module (``encoder``, ``embeddings.audio``, ``head``)."""
    nested = ("embeddings.", "encoders.", "heads.")
    return sorted(
        {".".join(n.split(".")[:2]) if n.startswith(nested) else n.split(".")[0] for n in names}
    )


def apply_initial_weights(model: nn.Module, initial: InitialWeights | None) -> dict[str, Any]:
    """Load ``initial`` into ``model`` in place; return and log what was loaded and what was left
    as initialised (counts of tensors and the modules they belong to)."""
    if initial is None:
        return {"source": SCRATCH}
    if initial.layout == "vit":
        vit = load_vit_into_classifier(model, initial.weights)
        logger.info("%s", vit.summary())
        loaded, left = vit.loaded, vit.random_init
    else:
        own = model.state_dict()
        usable = {n: t for n, t in initial.weights.items() if n in own}
        misfit = [
            (n, tuple(t.shape), tuple(own[n].shape))
            for n, t in usable.items()
            if t.shape != own[n].shape
        ]
        if misfit or not usable:
            raise ValueError(
                f"{initial.source} do not fit this model (pretrained shape, model shape: "
                f"{misfit[:3] or 'no parameter in common'}): pretrain with the phase's model sizes "
                f"(training.defaults.model, then `{PRETRAIN_COMMAND}`) or set init: scratch"
            )
        model.load_state_dict(usable, strict=False)
        loaded = sorted(usable)
        left = sorted(n for n, _ in model.named_parameters() if n not in usable)
    report = {
        "source": initial.source,
        "loaded": len(loaded),
        "loaded_modules": _parts(loaded),
        "left_at_initialisation": len(left),
        "left_at_initialisation_modules": _parts(left),
    }
    logger.info(
        "Initialised from %s: %d tensors loaded (%s); %d left as initialised (%s)",
        initial.source,
        report["loaded"],
        ", ".join(report["loaded_modules"]),
        report["left_at_initialisation"],
        ", ".join(report["left_at_initialisation_modules"]) or "-",
    )
    return report
