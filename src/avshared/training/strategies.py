"""Training strategies: how a training step turns a batch into the loss it backpropagates.

Joint training of two senses lets the one that is learnt faster dominate and the other stay
under-trained (modality imbalance). ``strategy.kind`` in the training parameters
(``training.defaults.strategy``, overridden per phase) chooses what a step does, with the same
model, data, optimiser and epoch budget:

- ``joint``: one forward with every modality of the phase, the loss of its logits (every phase but
  the strategy rows).
- ``alternating``: the steps cycle through audio only, video only and audio-visual (``batch_idx %
  3``), through the same model: every sense is trained on its own, in turn (in the spirit of MLA,
  Zhang et al., CVPR 2024).
- ``unimodal_auxiliary``: the audio-visual loss plus ``auxiliary_weight`` x (audio-only loss +
  video-only loss) of the same batch, from extra forwards with one modality.
- ``ogm_ge``: OGM-GE (Peng et al., CVPR 2022): the joint loss, and before each optimiser step the
  dominant sense's gradients are scaled down and every sense's noised (``modulate_gradients``).

Whatever the strategy, a step's train loss and accuracy are of the prediction it trains (the
audio-visual one, or the step's single sense under ``alternating``): comparable with the validation
metrics, which are always audio-visual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avshared.models.classifier import MODALITY_ORDER, mean_over_present

#: ``strategy.kind`` values, each a ``TrainingStrategy`` class below (``TRAINING_STRATEGIES``).
STRATEGY_KINDS: tuple[str, ...] = ("joint", "alternating", "unimodal_auxiliary", "ogm_ge")


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over the batch of ``-sum_c target_c * log softmax(logits)_c``.

    ``target`` (B, C) is a distribution per sample: one-hot for a hard label (where this equals the
    usual cross-entropy) or a crowd vote distribution for soft targets.
    """
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


class StepLoss(NamedTuple):
    """What a training step computed: ``objective`` () is backpropagated; ``logits`` (B, C) are the
    step's prediction and ``loss`` () their soft cross-entropy, which the train metrics record."""

    objective: Tensor
    logits: Tensor
    loss: Tensor


class TrainingStrategy:
    """``joint``, and the hooks the Lightning module calls (``EmotionClassifierModule``), which the
    other strategies override. ``every_step_uses_every_parameter`` False tells DDP to look for
    parameters a step left without a gradient."""

    every_step_uses_every_parameter: ClassVar[bool] = True

    def training_loss(
        self, model: nn.Module, inputs: Mapping[str, Tensor], target: Tensor, batch_idx: int
    ) -> StepLoss:
        """``inputs`` the model's keyword inputs (``audio``/``video``), ``target`` (B, C)."""
        logits = model(**inputs)
        loss = soft_cross_entropy(logits, target)
        return StepLoss(loss, logits, loss)

    def on_train_epoch_start(self, epoch: int) -> None:
        """Called at the start of every training epoch."""

    def before_optimizer_step(
        self, model: nn.Module, sum_over_processes: Callable[[Tensor], Tensor]
    ) -> None:
        """Called after the backward passes of an optimiser step (every accumulated batch) and
        before gradient clipping and the step; ``sum_over_processes`` sums a tensor over the DDP
        processes (the identity on one device)."""


class AlternatingTraining(TrainingStrategy):
    """``alternating``: batch ``i`` trains on ``CONDITIONS[i % 3]``: audio only, video only, then
    both, through the same model. An optimiser step of several accumulated batches mixes them."""

    CONDITIONS: ClassVar[tuple[tuple[str, ...], ...]] = (("audio",), ("video",), MODALITY_ORDER)
    every_step_uses_every_parameter = False  # a one-sense step leaves the other's embedding out

    def condition(self, batch_idx: int) -> tuple[str, ...]:
        """The modalities batch ``batch_idx`` of an epoch trains on."""
        return self.CONDITIONS[batch_idx % len(self.CONDITIONS)]

    def training_loss(
        self, model: nn.Module, inputs: Mapping[str, Tensor], target: Tensor, batch_idx: int
    ) -> StepLoss:
        given = {modality: inputs[modality] for modality in self.condition(batch_idx)}
        return super().training_loss(model, given, target, batch_idx)


class UnimodalAuxiliaryTraining(TrainingStrategy):
    """``unimodal_auxiliary``: L(audio-visual) + ``auxiliary_weight`` x (L(audio) + L(video)),
    the single-sense losses from extra forwards of the same batch with one modality."""

    def __init__(self, auxiliary_weight: float) -> None:
        self.auxiliary_weight = auxiliary_weight

    def training_loss(
        self, model: nn.Module, inputs: Mapping[str, Tensor], target: Tensor, batch_idx: int
    ) -> StepLoss:
        joint = super().training_loss(model, inputs, target, batch_idx)
        auxiliary = sum(
            soft_cross_entropy(model(**{modality: inputs[modality]}), target)
            for modality in MODALITY_ORDER
        )
        return joint._replace(objective=joint.loss + self.auxiliary_weight * auxiliary)


def ogm_ge_coefficients(scores: Mapping[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """OGM's gradient coefficient of each of two modalities from its score (a () tensor: how well
    its branch predicts the targets).

    The discrepancy ratio of audio is rho_a = s_audio / s_video and rho_v = 1 / rho_a; the modality
    with rho > 1 dominates and gets k = 1 - tanh(alpha * rho), the other k = 1: Eq. 10 of Peng et
    al. (CVPR 2022) and their code (GeWu-Lab/OGM-GE_CVPR2022). Computed on the device, with no
    read-back. Returns () tensors by modality.
    """
    ratio_audio = scores["audio"] / scores["video"]
    coefficients = {}
    for modality, ratio in (("audio", ratio_audio), ("video", 1 / ratio_audio)):
        slowed = 1 - torch.tanh(alpha * ratio)
        coefficients[modality] = torch.where(ratio > 1, slowed, torch.ones_like(slowed))
    return coefficients


def modulate_gradients(
    parameters: Mapping[str, Sequence[nn.Parameter]],
    coefficients: Mapping[str, Tensor],
    generator: torch.Generator | None,
) -> None:
    """OGM-GE in place: every gradient of modality m's ``parameters[m]`` times its coefficient k_m,
    then (GE, with a ``generator``) plus Gaussian noise with the scaled gradient's own standard
    deviation, per tensor, as the reference code does it; ``generator`` None: OGM without GE.

    The noise is drawn from ``generator`` alone, so processes seeded alike add the same noise.
    """
    for modality, modality_parameters in parameters.items():
        for parameter in modality_parameters:
            if parameter.grad is None:
                continue
            parameter.grad.mul_(coefficients[modality].to(parameter.grad.dtype))
            if generator is not None:
                grad = parameter.grad
                noise = torch.randn(
                    grad.shape, generator=generator, device=grad.device, dtype=grad.dtype
                )
                grad.add_(noise * grad.std())


class OgmGeTraining(TrainingStrategy):
    """``ogm_ge``: joint training of a model with a branch per modality, its gradients modulated.

    Each training batch scores each modality: the mean, over the samples it is present in, of the
    probability its branch's logits give the target (softmax . target: the true class's probability
    for a one-hot target). The paper sums over the batch; with modality dropout the senses may be
    present in different numbers of samples, hence means, which give the same ratio otherwise.
    Before the optimiser step, the scores of every batch the step accumulated (and of every DDP
    process) give the coefficients (``ogm_ge_coefficients``), and ``modulate_gradients`` applies
    them to each modality's embedding and encoder (``branch_parameters``; the reference modulates
    its ResNet encoders, the heads and fusion layer are left alone). That is before gradient
    clipping, so the clipped norm bounds the step that is taken, noise included.

    The GE noise comes from a generator of its own, seeded from (``seed``, epoch) at every epoch
    start: the same noise in every DDP process (their gradients, averaged by DDP, must stay equal)
    and in a run resumed at that epoch.
    """

    def __init__(self, alpha: float, seed: int) -> None:
        self.alpha = alpha
        self.seed = seed
        self._scores: dict[str, Tensor] = {}
        self._counts: dict[str, Tensor] = {}
        self._noise_seed: int | None = None
        self._generator: torch.Generator | None = None

    def training_loss(
        self, model: nn.Module, inputs: Mapping[str, Tensor], target: Tensor, batch_idx: int
    ) -> StepLoss:
        logits, present = model.modality_logits(**inputs)
        fused = mean_over_present(logits, present)
        loss = soft_cross_entropy(fused, target)
        with torch.no_grad():
            for modality, modality_logits in logits.items():
                fit = (modality_logits.float().softmax(dim=-1) * target).sum(dim=-1)
                flag = present[modality]
                weight = torch.ones_like(fit) if flag is None else flag.to(fit.dtype)
                self._scores[modality] = self._scores.get(modality, 0) + (fit * weight).sum()
                self._counts[modality] = self._counts.get(modality, 0) + weight.sum()
        return StepLoss(loss, fused, loss)

    def on_train_epoch_start(self, epoch: int) -> None:
        self._noise_seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        self._generator = None  # made on the gradients' device at the epoch's first step

    def before_optimizer_step(
        self, model: nn.Module, sum_over_processes: Callable[[Tensor], Tensor]
    ) -> None:
        modalities = list(self._scores)
        totals = sum_over_processes(torch.stack([self._scores[m] for m in modalities]))
        counts = sum_over_processes(torch.stack([self._counts[m] for m in modalities]))
        self._scores, self._counts = {}, {}
        means = dict(zip(modalities, totals / counts.clamp(min=1), strict=True))
        coefficients = ogm_ge_coefficients(means, self.alpha)
        branches = {m: model.branch_parameters(m) for m in modalities}
        modulate_gradients(branches, coefficients, self._noise_generator(branches))

    def _noise_generator(self, branches: Mapping[str, Sequence[nn.Parameter]]) -> torch.Generator:
        if self._noise_seed is None:
            raise RuntimeError("OgmGeTraining.on_train_epoch_start was not called before a step")
        if self._generator is None:
            device = next(iter(branches.values()))[0].device
            self._generator = torch.Generator(device=device).manual_seed(self._noise_seed)
        return self._generator


#: ``strategy.kind`` -> its class.
TRAINING_STRATEGIES: dict[str, type[TrainingStrategy]] = {
    "joint": TrainingStrategy,
    "alternating": AlternatingTraining,
    "unimodal_auxiliary": UnimodalAuxiliaryTraining,
    "ogm_ge": OgmGeTraining,
}


def check_strategy(kind: str, model_class: type[nn.Module], modalities: Sequence[str]) -> None:
    """Raise a ValueError that says what to change when strategy ``kind`` cannot train a
    ``model_class`` model of ``modalities``: every strategy but ``joint`` balances two senses, and
    ``ogm_ge`` needs a branch per sense (``branch_parameters``, the separate-encoders model)."""
    if kind not in TRAINING_STRATEGIES:
        raise ValueError(f"strategy.kind {kind!r} unknown; use one of {STRATEGY_KINDS}")
    if kind != "joint" and tuple(modalities) != MODALITY_ORDER:
        raise ValueError(
            f"strategy.kind {kind} balances audio and video, and this model trains on "
            f"{list(modalities)}: use strategy.kind joint for a one-modality phase"
        )
    if kind == "ogm_ge" and not hasattr(model_class, "branch_parameters"):
        raise ValueError(
            f"strategy.kind ogm_ge modulates the gradients of each modality's own encoder, and a "
            f"{model_class.__name__} has no encoder per modality: use it with model.kind separate "
            "(as the baseline_ogm_ge phase does), or choose another strategy.kind"
        )


def training_strategy(
    options: Mapping[str, Any], model: nn.Module, modalities: Sequence[str], seed: int
) -> TrainingStrategy:
    """The strategy of a phase's ``strategy`` parameters (``kind``, ``auxiliary_weight``,
    ``ogm_ge_alpha``) for ``model``, checked by ``check_strategy``; ``seed`` seeds OGM-GE's
    noise."""
    kind = options["kind"]
    check_strategy(kind, type(model), modalities)
    if kind == "unimodal_auxiliary":
        return UnimodalAuxiliaryTraining(options["auxiliary_weight"])
    if kind == "ogm_ge":
        return OgmGeTraining(options["ogm_ge_alpha"], seed)
    return TRAINING_STRATEGIES[kind]()
