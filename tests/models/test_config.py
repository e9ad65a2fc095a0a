"""ModelConfig: presets, token counts, validation, overrides from parameters."""

from __future__ import annotations

import pytest

from avshared.models import PRESETS, ModelConfig


def test_default_preset_token_counts():
    config = ModelConfig.preset("default")

    assert (config.dim, config.depth, config.heads) == (128, 4, 4)
    assert config.audio_tokens == 72  # 64 mels x 300 frames, 16x16 patches
    assert config.video_tokens == 98  # 8 frames 112x112, 4x16x16 tubelets


def test_gpu_preset_is_wider_and_deeper():
    default, gpu = PRESETS["default"], PRESETS["gpu"]

    assert gpu.dim > default.dim and gpu.depth > default.depth
    assert gpu.video_tokens == 196


def test_vit_base_preset_has_vit_b16s_shape():
    vit_base, default = PRESETS["vit_base"], ModelConfig()

    assert (vit_base.dim, vit_base.depth, vit_base.heads) == (768, 12, 12)
    assert round(vit_base.dim * vit_base.mlp_ratio) == 3072
    assert vit_base.audio_patch == (16, 16) and vit_base.video_tubelet[1:] == (16, 16)
    assert (vit_base.norm_eps, vit_base.positions) == (1e-6, "grid")
    assert (default.norm_eps, default.positions) == (1e-5, "factorised")


def test_overrides_from_yaml_lists_become_tuples():
    config = ModelConfig.preset("tiny", audio_patch=[8, 8], video_tubelet=[2, 8, 8])

    assert config.audio_patch == (8, 8)
    assert config.video_tubelet == (2, 8, 8)
    assert config.dim == PRESETS["tiny"].dim
    assert hash(config) == hash(
        ModelConfig.preset("tiny", audio_patch=(8, 8), video_tubelet=(2, 8, 8))
    )


def test_to_dict_round_trips():
    config = ModelConfig.preset("gpu")

    assert ModelConfig(**config.to_dict()) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dim": 130}, "must be divisible by heads"),
        ({"depth": 0}, "depth must be a positive integer"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"modality_dropout": 1.5}, "modality_dropout"),
        ({"audio_patch": (128, 16)}, "audio_patch .* must fit"),
        ({"video_tubelet": (16, 16, 16)}, "video_tubelet .* must fit"),
        ({"video_tubelet": (4, 16)}, r"video_tubelet must be \(time, height, width\)"),
        ({"num_classes": 1}, "num_classes"),
        ({"norm_eps": 0.0}, r"norm_eps must be in \(0, 1\)"),
        ({"positions": "learned"}, "positions must be 'factorised' or 'grid'"),
        ({"separate_layers": 0}, r"separate_layers \(0\) must be between 1 and depth - 1 = 3"),
        ({"separate_layers": 4}, r"separate_layers \(4\) must be between 1 and depth - 1 = 3"),
    ],
)
def test_invalid_configs_say_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.preset("default", **overrides)


def test_unknown_preset_and_field_are_refused():
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match=r"unknown ModelConfig field\(s\) \['width'\]"):
        ModelConfig.preset("default", width=64)
