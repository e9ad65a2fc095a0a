"""Masked autoencoding: masking, the decoder, the loss on hidden patches, the contrastive term."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from avshared.models import ModelConfig, build_model
from avshared.models.masked_autoencoder import (
    DecoderConfig,
    MaskedAutoencoder,
    MaskedAutoencoderDecoder,
    gather_tokens,
    info_nce,
    masked_reconstruction_loss,
    normalise_patches,
    random_masking,
    visible_count,
)

DECODER = DecoderConfig(dim=16, depth=1, heads=2)


@pytest.fixture
def config(tiny_config: ModelConfig) -> ModelConfig:
    """The tiny shapes 32 wide, on 32 x 32 pictures in 2 x 16 x 16 tubelets: 2 x 4 = 8 audio
    tokens, 2 x 2 x 2 = 8 video tokens."""
    return replace(tiny_config, dim=32, image_size=32, video_tubelet=(2, 16, 16))


def _inputs(config: ModelConfig, batch: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    pictures = (batch, config.video_frames, 3, config.image_size, config.image_size)
    return {
        "audio": torch.randn(batch, 1, config.n_mels, config.audio_frames, generator=generator),
        "video": torch.randint(0, 256, pictures, dtype=torch.uint8),
    }


def _model(config: ModelConfig, modalities="bimodal", **options) -> MaskedAutoencoder:
    torch.manual_seed(0)
    return MaskedAutoencoder(modalities, config, DECODER, **options)


@pytest.mark.parametrize(("tokens", "ratio", "kept"), [(72, 0.75, 18), (98, 0.75, 24), (8, 0.9, 1)])
def test_the_mask_ratio_decides_how_many_tokens_stay_visible(tokens, ratio, kept):
    mask = random_masking(5, tokens, ratio)

    assert visible_count(tokens, ratio) == kept
    assert mask.visible.shape == (5, kept)
    assert (mask.hidden.sum(dim=1) == tokens - kept).all()
    # The visible indices are exactly the positions not hidden.
    shown = torch.zeros(5, tokens, dtype=torch.bool).scatter(1, mask.visible, True)
    assert torch.equal(shown, ~mask.hidden)


def test_each_sample_draws_its_own_mask_and_a_generator_repeats_it():
    masks = random_masking(64, 20, 0.75, generator=torch.Generator().manual_seed(0))
    again = random_masking(64, 20, 0.75, generator=torch.Generator().manual_seed(0))

    assert len({tuple(row.tolist()) for row in masks.hidden}) > 50
    assert torch.equal(masks.hidden, again.hidden)


def test_restore_puts_visible_then_hidden_tokens_back_in_their_places():
    mask = random_masking(4, 10, 0.6)
    tokens = torch.arange(10.0).repeat(4, 1).unsqueeze(-1)  # each token holds its position
    shuffled = torch.cat([gather_tokens(tokens, mask.visible), torch.full((4, 6, 1), -1.0)], 1)
    restored = gather_tokens(shuffled, mask.restore)

    assert torch.equal(restored[~mask.hidden], tokens[~mask.hidden])
    assert (restored[mask.hidden] == -1).all()


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_a_mask_ratio_outside_zero_one_is_refused(ratio):
    with pytest.raises(ValueError, match="mask_ratio must be between 0 and 1"):
        random_masking(2, 10, ratio)


def test_the_loss_counts_hidden_patches_only():
    target = torch.zeros(2, 4, 3)
    predicted = torch.zeros(2, 4, 3)
    hidden = torch.tensor([[True, False, True, False], [False, False, True, True]])
    predicted[~hidden] = 100.0  # wrong everywhere the encoder saw
    predicted[0, 0] = 2.0  # a hidden patch off by 2: squared error 4

    loss = masked_reconstruction_loss(predicted, target, hidden)

    assert loss.item() == pytest.approx(4.0 / 4)  # four hidden patches, one wrong


def test_targets_are_normalised_per_patch_and_can_be_undone():
    patches = torch.randn(2, 5, 7) * 3 + 10
    normalised, mean, std = normalise_patches(patches)

    torch.testing.assert_close(normalised.mean(dim=-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.std(dim=-1), torch.ones(2, 5), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised * std + mean, patches)


def test_the_decoder_predicts_every_patch_of_every_sense():
    decoder = MaskedAutoencoderDecoder(32, {"audio": 8, "video": 12}, {"audio": 64, "video": 30})
    masks = {"audio": random_masking(3, 8, 0.75), "video": random_masking(3, 12, 0.75)}
    states = {"audio": torch.randn(3, 2, 32), "video": torch.randn(3, 3, 32)}

    predictions = decoder(torch.randn(3, 32), states, masks)

    assert {m: tuple(p.shape) for m, p in predictions.items()} == {
        "audio": (3, 8, 64),
        "video": (3, 12, 30),
    }


def test_hidden_tokens_never_reach_the_encoder(config):
    model = _model(config).eval()
    inputs = _inputs(config)
    reference = model(**inputs, generator=torch.Generator().manual_seed(3))
    hidden = reference.masks["audio"].hidden
    # Change the spectrogram inside every hidden patch only (8 x 8 patches, frequency-major).
    changed = inputs["audio"].clone()
    for sample, token in hidden.nonzero().tolist():
        band, frame = divmod(token, 4)
        changed[sample, 0, 8 * band : 8 * band + 8, 8 * frame : 8 * frame + 8] += 50.0
    again = model(**{**inputs, "audio": changed}, generator=torch.Generator().manual_seed(3))

    torch.testing.assert_close(again.predictions["audio"], reference.predictions["audio"])
    assert again.reconstruction["audio"] != reference.reconstruction["audio"]  # targets moved


def test_one_step_lowers_the_loss_and_the_contrastive_term_joins_it(config):
    model = _model(config, contrastive_weight=0.5)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    inputs = _inputs(config)
    before = model(**inputs, generator=torch.Generator().manual_seed(0))
    before.loss.backward()
    optimiser.step()
    after = model(**inputs, generator=torch.Generator().manual_seed(0))

    assert before.contrastive is not None
    expected = sum(before.reconstruction.values()) + 0.5 * before.contrastive
    torch.testing.assert_close(before.loss, expected)
    assert after.loss < before.loss


def test_one_sense_has_no_contrastive_term(config):
    output = _model(config, "audio", contrastive_weight=1.0)(audio=_inputs(config)["audio"])

    assert output.contrastive is None and set(output.reconstruction) == {"audio"}


def test_info_nce_is_low_for_matching_pairs_and_high_for_shuffled_ones():
    embeddings = torch.randn(8, 16)
    matched = info_nce(embeddings, embeddings + 0.01 * torch.randn(8, 16), temperature=0.05)
    shuffled = info_nce(embeddings, embeddings.roll(1, dims=0), temperature=0.05)

    assert matched < 0.01 < shuffled


def test_reconstructions_keep_the_visible_patches_and_fill_the_hidden_ones(config):
    model = _model(config).eval()
    inputs = _inputs(config, 2)
    pictures = model.reconstruct(**inputs, generator=torch.Generator().manual_seed(0))

    audio = pictures["audio"]
    shown = ~audio["masked"].isnan()
    assert shown.any() and (~shown).any()
    torch.testing.assert_close(audio["reconstructed"][shown], audio["original"][shown])
    assert not audio["reconstructed"].isnan().any()
    video = pictures["video"]
    torch.testing.assert_close(video["original"], inputs["video"].float() / 255)


def test_the_pretrained_parameters_have_the_classifiers_names_and_shapes(config):
    autoencoder = _model(config).state_dict()
    classifier = build_model("shared", "bimodal", config).state_dict()
    kept = {k: v.shape for k, v in autoencoder.items() if k.startswith(("encoder.", "embeddings."))}

    assert kept == {k: v.shape for k, v in classifier.items() if not k.startswith("head.")}


def test_an_input_the_autoencoder_was_not_built_for_is_refused(config):
    with pytest.raises(ValueError, match=r"takes \['audio'\]"):
        _model(config, "audio")(video=_inputs(config)["video"])
