"""Weights from a ViT checkpoint file: the mapped encoder computes what timm's ViT computes.

The references are randomly initialised timm models (``pretrained=False``: nothing is downloaded),
saved to a file in tmp_path and loaded back through ``avshared.models.vit_checkpoint``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avshared.models import (
    PRESETS,
    AudioPatchEmbedding,
    ModelConfig,
    SharedEncoder,
    VideoPatchEmbedding,
    build_model,
)
from avshared.models.embeddings import IMAGENET_MEAN, IMAGENET_STD
from avshared.models.vit_checkpoint import (
    factorise_position_grid,
    inflate_patch_kernel,
    interpolate_position_grid,
    load_vit_into_classifier,
    load_vit_weights,
    read_vit_state_dict,
    resize_patch_kernel,
)

TOL = {"rtol": 1e-5, "atol": 1e-5}
TINY_DIM, TINY_DEPTH, TINY_HEADS = 192, 12, 3  # vit_tiny_patch16_224


@pytest.fixture(scope="module")
def timm():
    return pytest.importorskip("timm", reason="timm (a test dependency) builds the reference ViT")


@pytest.fixture(scope="module")
def vit_tiny(timm):
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()


@pytest.fixture(scope="module")
def vit_tiny_file(vit_tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("vit") / "vit_tiny_patch16_224.pth"
    torch.save(vit_tiny.state_dict(), path)
    return path


def _tiny_encoder(norm_eps: float = 1e-6) -> SharedEncoder:
    return SharedEncoder(TINY_DIM, TINY_DEPTH, TINY_HEADS, dropout=0.0, norm_eps=norm_eps).eval()


def _small_vit(timm, **kwargs):
    """A small timm VisionTransformer (2 blocks of width 32) for the variants."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    options = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2}
    return VisionTransformer(**(options | kwargs)).eval()


def _perturb(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm initialises LayerNorms to the identity and biases to zero: perturb every tensor so that
    a wrong mapping of any of them shows."""
    generator = torch.Generator().manual_seed(2)
    return {k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in state.items()}


# --- the blocks ------------------------------------------------------------------------------


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_mapped_blocks_give_timms_outputs(vit_tiny, vit_tiny_file, grad):
    encoder = _tiny_encoder()
    report = load_vit_weights(vit_tiny_file, encoder)
    tokens = torch.randn(2, 1 + 30, TINY_DIM)  # a [CLS] and 30 patch tokens

    with torch.set_grad_enabled(grad):
        expected = vit_tiny.norm(vit_tiny.blocks(tokens))
        mapped = encoder.norm(encoder.layers(tokens))

    torch.testing.assert_close(mapped, expected, **TOL)
    assert report.random_init == []
    # No embedding was given: the patch projection has nowhere to go.
    assert report.unused == [
        "head.bias",
        "head.weight",
        "patch_embed.proj.bias",
        "patch_embed.proj.weight",
    ]


def test_perturbed_norms_and_biases_map_too(timm, tmp_path):
    vit = _small_vit(timm)
    vit.load_state_dict(_perturb(vit.state_dict()))
    torch.save({"model": vit.state_dict()}, tmp_path / "wrapped.pth")
    encoder = SharedEncoder(32, 2, 2, dropout=0.0, norm_eps=1e-6).eval()

    load_vit_weights(tmp_path / "wrapped.pth", encoder, heads=2)
    tokens = torch.randn(3, 7, 32)

    with torch.no_grad():
        torch.testing.assert_close(
            encoder.norm(encoder.layers(tokens)), vit.norm(vit.blocks(tokens)), **TOL
        )


def test_encoder_cls_output_is_timms_cls_output(vit_tiny, vit_tiny_file):
    encoder = _tiny_encoder()
    load_vit_weights(vit_tiny_file, encoder)
    patches = torch.randn(2, 196, TINY_DIM)

    with torch.no_grad():
        # timm adds pos_embed's first row to [CLS]; the loader folds it into the [CLS] token.
        cls = vit_tiny.cls_token + vit_tiny.pos_embed[:, :1]
        sequence = torch.cat([cls.expand(2, -1, -1), patches], dim=1)
        expected = vit_tiny.norm(vit_tiny.blocks(sequence))[:, 0]
        mapped = encoder(patches)

    torch.testing.assert_close(mapped, expected, **TOL)


def test_spectrogram_through_grid_embedding_and_encoder_is_timms_grey_image(vit_tiny, tmp_path):
    """End to end: a (224 x 224) 'spectrogram' through the audio embedding (grid positions, type
    embedding zeroed) and the encoder is timm's ViT on that grey image replicated over RGB."""
    vit = vit_tiny
    encoder = _tiny_encoder()
    audio = AudioPatchEmbedding(224, 224, TINY_DIM, (16, 16), positions="grid").eval()
    report = load_vit_weights(vit.state_dict(), encoder, {"audio": audio})
    with torch.no_grad():
        audio.type_embedding.zero_()
    grey = torch.randn(2, 1, 224, 224)

    with torch.no_grad():
        expected = vit.forward_features(grey.expand(-1, 3, -1, -1))[:, 0]
        mapped = encoder(audio(grey))

    torch.testing.assert_close(mapped, expected, rtol=1e-4, atol=1e-4)
    assert report.random_init == ["embeddings.audio.type_embedding"]


def test_layer_scale_is_folded_in(timm):
    vit = _small_vit(timm, init_values=0.3)
    vit.load_state_dict(_perturb(vit.state_dict()))
    encoder = SharedEncoder(32, 2, 2, dropout=0.0, norm_eps=1e-6).eval()

    report = load_vit_weights(vit.state_dict(), encoder, heads=2)
    tokens = torch.randn(2, 5, 32)

    with torch.no_grad():
        torch.testing.assert_close(
            encoder.norm(encoder.layers(tokens)), vit.norm(vit.blocks(tokens)), **TOL
        )
    assert any("LayerScale" in line for line in report.adaptations)


def test_separate_q_and_v_biases_and_half_precision_files_map(timm, tmp_path):
    """BEiT / VideoMAE keep q_bias and v_bias (no key bias) apart; files may be float16."""
    vit = _small_vit(timm)
    reference = {k: v.half().float() for k, v in _perturb(vit.state_dict()).items()}
    checkpoint = {k: v.half() for k, v in reference.items()}
    for i in range(2):
        reference[f"blocks.{i}.attn.qkv.bias"][32:64] = 0  # no key bias
        q, _, v = checkpoint.pop(f"blocks.{i}.attn.qkv.bias").chunk(3)
        checkpoint[f"blocks.{i}.attn.q_bias"], checkpoint[f"blocks.{i}.attn.v_bias"] = q, v
    vit.load_state_dict(reference)
    torch.save(checkpoint, tmp_path / "beit_like.pth")
    encoder = SharedEncoder(32, 2, 2, dropout=0.0, norm_eps=1e-6).eval()

    report = load_vit_weights(tmp_path / "beit_like.pth", encoder, heads=2)
    tokens = torch.randn(2, 5, 32)

    with torch.no_grad():
        torch.testing.assert_close(
            encoder.norm(encoder.layers(tokens)), vit.norm(vit.blocks(tokens)), **TOL
        )
    assert any("q_bias/v_bias" in line for line in report.adaptations)


def test_blocks_with_parts_a_torch_layer_lacks_are_refused_and_nothing_changes(timm):
    vit = _small_vit(timm)
    state = dict(vit.state_dict())
    state["blocks.1.attn.q_norm.weight"] = torch.ones(16)  # as with qk_norm=True
    encoder = SharedEncoder(32, 2, 2, dropout=0.0)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}

    with pytest.raises(ValueError, match=r"block 1 .* \['attn.q_norm.weight'\]"):
        load_vit_weights(state, encoder, heads=2)

    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # block 0 was not written either
    assert encoder.norm.eps == 1e-5


def test_a_clip_style_norm_before_the_blocks_is_refused(timm):
    vit = _small_vit(timm, pre_norm=True)

    with pytest.raises(ValueError, match=r"parts the shared encoder lacks: \['norm_pre.bias'"):
        load_vit_weights(vit.state_dict(), SharedEncoder(32, 2, 2), heads=2)


def test_a_pickled_object_is_not_run(tmp_path):
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pth")  # a module, not tensors

    with pytest.raises(ValueError, match=r"weights_only=True.*no code from a file runs"):
        read_vit_state_dict(tmp_path / "pickled.pth")


def test_a_model_of_torchs_eps_is_set_to_timms_and_told(vit_tiny_file):
    encoder = _tiny_encoder(norm_eps=1e-5)

    report = load_vit_weights(vit_tiny_file, encoder)

    assert {m.eps for m in encoder.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-6}
    assert any("norm_eps=1e-06" in line for line in report.adaptations)


# --- positions ---------------------------------------------------------------------------------


def test_position_grid_unchanged_when_the_token_grid_is_the_checkpoints(vit_tiny, vit_tiny_file):
    grid = vit_tiny.pos_embed[0, 1:].reshape(14, 14, TINY_DIM).detach()
    audio = AudioPatchEmbedding(224, 224, TINY_DIM, (16, 16), positions="grid")
    video = VideoPatchEmbedding(4, 224, TINY_DIM, (2, 16, 16), positions="grid")

    load_vit_weights(vit_tiny_file, _tiny_encoder(), {"audio": audio, "video": video})

    assert torch.equal(interpolate_position_grid(grid, (14, 14)), grid)
    assert torch.equal(audio.position_grid().detach(), grid)
    assert torch.equal(video.frame_position_grid()[0].detach(), grid)


def test_positions_are_interpolated_to_each_modalitys_grid(vit_tiny_file):
    config = ModelConfig(dim=TINY_DIM, depth=TINY_DEPTH, heads=TINY_HEADS, positions="grid")
    model = build_model("shared", "bimodal", config)

    report = load_vit_into_classifier(model, vit_tiny_file)

    assert model.embeddings["audio"].position.shape == (4, 18, TINY_DIM)  # 64 mels x 300 frames
    assert model.embeddings["video"].frame_position.shape == (1, 7, 7, TINY_DIM)  # 112 x 112
    assert "embeddings.video.time_position" in report.random_init
    assert any("(14, 14) grid -> (4, 18)" in line for line in report.adaptations)


def test_interpolation_keeps_a_smooth_grid_smooth():
    rows = torch.linspace(-1, 1, 14).view(14, 1, 1)
    grid = (rows + torch.zeros(1, 14, 3)).contiguous()  # varies linearly down the rows only

    resized = interpolate_position_grid(grid, (4, 18))

    assert resized.shape == (4, 18, 3)
    assert torch.allclose(resized[:, 0], resized[:, -1], atol=1e-6)  # still constant along a row
    assert (resized[1:, 0, 0] > resized[:-1, 0, 0]).all()  # still increasing down the rows


def test_factorised_positions_are_exact_for_a_per_axis_grid_and_say_what_they_lose():
    rows, cols = torch.randn(5, 1, 8), torch.randn(1, 6, 8)

    fitted_rows, fitted_cols, lost = factorise_position_grid(rows + cols)
    _, _, lost_noise = factorise_position_grid(torch.randn(5, 6, 8))

    torch.testing.assert_close(fitted_rows + fitted_cols, rows + cols)
    assert lost < 1e-6
    assert lost_noise > 0.5


def test_factorised_embeddings_take_the_fitted_grid(vit_tiny_file):
    audio = AudioPatchEmbedding(64, 300, TINY_DIM)

    report = load_vit_weights(vit_tiny_file, _tiny_encoder(), {"audio": audio})

    assert "embeddings.audio.freq_position" in report.loaded
    assert any("factorised per axis" in line and "% of" in line for line in report.adaptations)


def test_an_ast_style_checkpoint_with_a_non_square_grid(timm):
    """AST: keys under module.v., [CLS] and distillation tokens, a (freq x time) grid."""
    vit = _small_vit(timm, img_size=(48, 80))  # a 3 x 5 grid
    state = dict(vit.state_dict())
    state["dist_token"] = torch.randn(1, 1, 32)
    pos = state["pos_embed"]
    state["pos_embed"] = torch.cat([pos[:, :1], torch.randn(1, 1, 32), pos[:, 1:]], dim=1)
    ast = {"module.v." + k: v for k, v in state.items()}
    audio = AudioPatchEmbedding(48, 80, 32, (16, 16), positions="grid")
    encoder = SharedEncoder(32, 2, 2, dropout=0.0)

    with pytest.raises(ValueError, match=r"pass checkpoint_grid=\(rows, cols\)"):
        load_vit_weights(ast, encoder, {"audio": audio}, heads=2)
    report = load_vit_weights(ast, encoder, {"audio": audio}, heads=2, checkpoint_grid=(3, 5))

    assert torch.equal(audio.position.detach(), pos[0, 1:].reshape(3, 5, 32))
    assert "dist_token" in report.unused


# --- patch projections -------------------------------------------------------------------------


def test_rgb_summed_projection_on_a_grey_image_is_timms(vit_tiny, vit_tiny_file):
    audio = AudioPatchEmbedding(64, 300, TINY_DIM)
    load_vit_weights(vit_tiny_file, _tiny_encoder(), {"audio": audio})
    grey = torch.randn(2, 1, 64, 288)

    with torch.no_grad():
        expected = vit_tiny.patch_embed.proj(grey.expand(-1, 3, -1, -1))
        mapped = audio.projection(grey)

    torch.testing.assert_close(mapped, expected, **TOL)


@pytest.mark.parametrize("inflation", ["average", "central"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_inflated_tubelets_on_a_static_clip_give_the_2d_projection(
    vit_tiny, vit_tiny_file, inflation, depth
):
    video = VideoPatchEmbedding(8, 112, TINY_DIM, (depth, 16, 16))
    load_vit_weights(vit_tiny_file, _tiny_encoder(), {"video": video}, video_inflation=inflation)
    frame = torch.randn(2, 3, 112, 112)
    clip = frame.unsqueeze(2).expand(-1, -1, 8, -1, -1)  # (B, 3, F, H, W), the same frame

    with torch.no_grad():
        expected = vit_tiny.patch_embed.proj(frame)  # (B, D, 7, 7)
        mapped = video.projection(clip)  # (B, D, 8 // depth, 7, 7)

    for t in range(8 // depth):
        torch.testing.assert_close(mapped[:, :, t], expected, **TOL)


def test_inflations_differ_on_a_moving_clip():
    kernel = torch.randn(4, 3, 2, 2)

    average, central = (inflate_patch_kernel(kernel, 3, mode) for mode in ("average", "central"))

    assert torch.allclose(average.sum(dim=2), kernel) and torch.allclose(central.sum(dim=2), kernel)
    assert torch.equal(central[:, :, 1], kernel) and not central[:, :, 0].any()
    with pytest.raises(ValueError, match="video_inflation must be one of"):
        inflate_patch_kernel(kernel, 3, "first")


def test_checkpoint_normalisation_is_folded_into_the_video_projection(vit_tiny, vit_tiny_file):
    """A checkpoint trained on (x - 0.5) / 0.5 inputs (timm's augreg ViTs), under the embedding's
    ImageNet normalisation, still sees what it saw."""
    video = VideoPatchEmbedding(2, 112, TINY_DIM, (2, 16, 16))
    half = (0.5, 0.5, 0.5)
    report = load_vit_weights(
        vit_tiny_file, _tiny_encoder(), {"video": video}, image_mean=half, image_std=half
    )
    frame = torch.rand(2, 3, 112, 112)
    ours = (frame - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        3, 1, 1
    )

    with torch.no_grad():
        expected = vit_tiny.patch_embed.proj((frame - 0.5) / 0.5)
        mapped = video.projection(ours.unsqueeze(2).expand(-1, -1, 2, -1, -1))[:, :, 0]

    torch.testing.assert_close(mapped, expected, rtol=1e-4, atol=1e-4)
    assert any("normalisation" in line for line in report.adaptations)


def test_a_kernel_resized_up_gives_the_same_output_on_the_resized_patch():
    kernel = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    patch = torch.randn(3, 1, 8, 8, dtype=torch.float64)

    resized = resize_patch_kernel(kernel, (16, 16))
    bigger = F.interpolate(patch, size=(16, 16), mode="bicubic", align_corners=False)

    torch.testing.assert_close(F.conv2d(bigger, resized), F.conv2d(patch, kernel))


def test_a_patch_size_other_than_the_checkpoints_is_resized_and_told(vit_tiny_file):
    audio = AudioPatchEmbedding(64, 300, TINY_DIM, (32, 32))

    report = load_vit_weights(vit_tiny_file, _tiny_encoder(), {"audio": audio})

    assert audio.projection.weight.shape == (TINY_DIM, 1, 32, 32)
    assert any("(16, 16) resized to (32, 32)" in line for line in report.adaptations)


# --- fit, files, models --------------------------------------------------------------------------


def test_a_config_that_does_not_fit_names_both(vit_tiny_file):
    model = build_model("shared", "bimodal", ModelConfig.preset("default"))

    with pytest.raises(ValueError) as error:
        load_vit_into_classifier(model, vit_tiny_file)

    message = str(error.value)
    assert "checkpoint: dim 192, depth 12, heads 3, mlp 768, patch 16x16 (vit_tiny_patch16)" in (
        message
    )
    assert "model: dim 128, depth 4, heads 4, mlp 512 (preset default)" in message
    assert "dim, depth, heads, mlp differ" in message


def test_heads_that_differ_are_refused(vit_tiny_file):
    encoder = SharedEncoder(TINY_DIM, TINY_DEPTH, 6, dropout=0.0)

    with pytest.raises(ValueError, match=r"\(heads differ\).*heads 3.*heads 6"):
        load_vit_weights(vit_tiny_file, encoder)


def test_wrapped_and_prefixed_state_dicts_and_safetensors_load_the_same(vit_tiny, tmp_path):
    state = vit_tiny.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.ckpt")
    safetensors = pytest.importorskip("safetensors.torch")
    safetensors.save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "v.safetensors")

    loaded = [
        read_vit_state_dict(path) for path in (tmp_path / "w.ckpt", tmp_path / "v.safetensors")
    ]

    encoders = [_tiny_encoder(), _tiny_encoder()]
    for encoder, source in zip(encoders, loaded, strict=True):
        load_vit_weights(source, encoder)
    first, second = (encoder.state_dict() for encoder in encoders)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.equal(encoders[0].norm.weight, state["norm.weight"])


def test_a_file_that_is_not_a_vit_is_refused(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")

    with pytest.raises(ValueError, match="no ViT blocks"):
        load_vit_weights(tmp_path / "other.pth", _tiny_encoder())
    with pytest.raises(FileNotFoundError, match="no ViT checkpoint file"):
        load_vit_weights(tmp_path / "missing.pth", _tiny_encoder())


def test_the_separate_baseline_gets_the_blocks_in_each_encoder(vit_tiny_file):
    config = ModelConfig(dim=TINY_DIM, depth=TINY_DEPTH, heads=TINY_HEADS, norm_eps=1e-6)
    model = build_model("separate", "bimodal", config)

    report = load_vit_into_classifier(model, vit_tiny_file)

    audio, video = model.encoders["audio"].state_dict(), model.encoders["video"].state_dict()
    assert all(torch.equal(audio[k], video[k]) for k in audio)
    assert "encoders.video.layers.layers.11.linear2.weight" in report.loaded
    assert {"heads.audio.linear.weight", "embeddings.video.type_embedding"} <= set(
        report.random_init
    )


def _vit_state_dict(dim: int, depth: int, mlp: int, patch: int = 16, side: int = 14) -> dict:
    """A timm vit_*_patch16_224 state dict of these sizes (zeros: only the shapes matter)."""
    state = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + side * side, dim),
        "patch_embed.proj.weight": (dim, 3, patch, patch),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
        "head.weight": (1000, dim),
        "head.bias": (1000,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        state |= {
            b + "norm1.weight": (dim,),
            b + "norm1.bias": (dim,),
            b + "attn.qkv.weight": (3 * dim, dim),
            b + "attn.qkv.bias": (3 * dim,),
            b + "attn.proj.weight": (dim, dim),
            b + "attn.proj.bias": (dim,),
            b + "norm2.weight": (dim,),
            b + "norm2.bias": (dim,),
            b + "mlp.fc1.weight": (mlp, dim),
            b + "mlp.fc1.bias": (mlp,),
            b + "mlp.fc2.weight": (dim, mlp),
            b + "mlp.fc2.bias": (dim,),
        }
    return {k: torch.zeros(shape) for k, shape in state.items()}


def test_the_state_dict_helper_has_timms_keys_and_shapes(vit_tiny):
    expected = {k: tuple(v.shape) for k, v in vit_tiny.state_dict().items()}

    assert {k: tuple(v.shape) for k, v in _vit_state_dict(192, 12, 768).items()} == expected


def test_a_vit_b16_checkpoint_maps_onto_the_vit_base_preset():
    preset = PRESETS["vit_base"]
    assert (preset.dim, preset.depth, preset.heads, preset.mlp_ratio) == (768, 12, 12, 4.0)
    assert preset.audio_patch == (16, 16) and preset.video_tubelet[1:] == (16, 16)
    assert preset.norm_eps == 1e-6
    state = _vit_state_dict(768, 12, 3072)
    state["blocks.11.attn.qkv.weight"] = torch.randn(3 * 768, 768)
    model = build_model("shared", "bimodal", preset)

    report = load_vit_into_classifier(model, state)

    assert torch.equal(
        model.encoder.layers.layers[11].self_attn.in_proj_weight,
        state["blocks.11.attn.qkv.weight"],
    )
    assert report.model == "preset vit_base"
    assert "vit_base_patch16" in report.checkpoint
    assert report.unused == ["head.bias", "head.weight"]
    assert not any("eps" in line for line in report.adaptations)
    assert set(report.random_init) == {
        "embeddings.audio.type_embedding",
        "embeddings.video.time_position",
        "embeddings.video.type_embedding",
        *(n for n, _ in model.head.named_parameters(prefix="head")),
    }


def test_the_gpu_preset_is_not_vit_b_shaped_and_says_so():
    model = build_model("shared", "audio", PRESETS["gpu"])

    with pytest.raises(
        ValueError, match=r"model: dim 384, depth 8, heads 6, mlp 1536 \(preset gpu"
    ):
        load_vit_into_classifier(model, _vit_state_dict(768, 12, 3072))
