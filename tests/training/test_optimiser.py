"""AdamW's implementations (optimiser.implementation) compute the same update: switching to the
faster one changes speed, not results."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from avshared.models import ModelConfig, build_model
from avshared.training.module import ADAMW_IMPLEMENTATIONS, EmotionClassifierModule

STATS = {"mean": [0.0], "std": [1.0]}


def _batches(count: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        labels = torch.randint(6, (4,), generator=generator)
        batches.append(
            {
                "audio": torch.randn(4, 1, 64, 300, generator=generator),
                "video": torch.randint(256, (4, 8, 3, 112, 112), generator=generator).to(
                    torch.uint8
                ),
                "target": torch.nn.functional.one_hot(labels, 6).float(),
                "label": labels,
            }
        )
    return batches


def _train(implementation: str, precision: str = "32-true") -> dict[str, torch.Tensor]:
    L.seed_everything(7, verbose=False)
    model = build_model(
        "shared", ["audio", "video"], ModelConfig.preset("tiny", modality_dropout=0.25)
    )
    module = EmotionClassifierModule(
        model,
        ["audio", "video"],
        STATS,
        learning_rate=3e-3,
        weight_decay=0.05,
        warmup_epochs=0,
        implementation=implementation,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(_batches(4), batch_size=None))
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _key_bias(name: str, value: torch.Tensor) -> slice | None:
    """The key part of an attention layer's input-projection bias: softmax ignores a constant
    added to every key's score, so its gradient is zero but for rounding, which Adam's
    normalisation blows up to full steps that differ from one rounding to the next. It does not
    change any output."""
    if name.endswith("self_attn.in_proj_bias"):
        dim = value.numel() // 3
        return slice(dim, 2 * dim)
    return None


def test_every_adamw_implementation_trains_to_the_same_model():
    reference = _train("for-loop")
    for implementation in ("fused", "foreach"):
        weights = _train(implementation)
        for name, value in reference.items():
            mine = weights[name].clone()
            key = _key_bias(name, value)
            if key is not None:
                mine[key] = value[key]
            torch.testing.assert_close(mine, value, atol=1e-5, rtol=1e-5, msg=name)
        # The key biases differ, and change nothing: the same outputs.
        model = build_model("shared", ["audio", "video"], ModelConfig.preset("tiny"))
        batch = _batches(1)[0]
        outputs = []
        for state in (reference, weights):
            model.load_state_dict(state)
            outputs.append(model.eval()(audio=batch["audio"], video=batch["video"]))
        torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)


def test_fused_falls_back_to_foreach_under_mixed_precision():
    # Lightning's mixed-precision plugin refuses to clip a fused optimiser's gradients.
    _train("fused", precision="bf16-mixed")


def test_an_unknown_implementation_is_refused():
    model = build_model("shared", ["video"], ModelConfig.preset("tiny"))
    with pytest.raises(ValueError, match=r"optimiser\.implementation 'adam'"):
        EmotionClassifierModule(model, ["video"], implementation="adam")
    assert ADAMW_IMPLEMENTATIONS == ("fused", "foreach", "for-loop")
