"""Log-mel spectrograms: shape, values on known signals, resampling, centring on speech, stats."""

from __future__ import annotations

import numpy as np
import pytest
import torchaudio

from avshared import media
from avshared.features.audio import (
    LogMelConfig,
    LogMelExtractor,
    apply_spectrogram_stats,
    centre_on_speech,
    energy_centre,
    extract_clip_log_mel,
    spectrogram_stats,
)

CONFIG = LogMelConfig(dtype="float32", top_db=None)


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def expected_band(frequency: float, config: LogMelConfig) -> int:
    """The mel band whose filter weighs the tone's FFT bin most, by torchaudio's filterbank."""
    filterbank = torchaudio.functional.melscale_fbanks(
        n_freqs=config.n_fft // 2 + 1,
        f_min=config.f_min,
        f_max=config.f_max,
        n_mels=config.n_mels,
        sample_rate=config.sample_rate,
    )
    fft_bin = round(frequency * config.n_fft / config.sample_rate)
    return int(filterbank[fft_bin].argmax())


def loudest_band(spectrogram: np.ndarray) -> int:
    return int(spectrogram[0].mean(axis=1).argmax())


def test_three_seconds_give_exactly_300_frames_of_64_bands():
    assert CONFIG.frames == 300
    assert CONFIG.window_samples == 400 + 299 * 160
    spectrogram = LogMelExtractor(CONFIG)(tone(1000, 2.5, 16_000), 16_000)
    assert spectrogram.shape == (1, 64, 300)
    assert spectrogram.dtype == np.float32
    assert LogMelExtractor(LogMelConfig())(tone(1000, 2.5, 16_000), 16_000).dtype == np.float16


@pytest.mark.parametrize("frequency", [250.0, 1000.0, 3000.0])
def test_a_pure_tone_lands_in_its_mel_band(frequency):
    spectrogram = LogMelExtractor(CONFIG)(tone(frequency, 3.5, 16_000), 16_000)
    assert loudest_band(spectrogram) == expected_band(frequency, CONFIG)


def test_doubling_the_amplitude_adds_six_decibels():
    extractor = LogMelExtractor(CONFIG)
    quiet = extractor(tone(1000, 3.5, 16_000, amplitude=0.2), 16_000)
    loud = extractor(tone(1000, 3.5, 16_000, amplitude=0.4), 16_000)
    band = expected_band(1000, CONFIG)
    gain = loud[0, band].mean() - quiet[0, band].mean()
    assert gain == pytest.approx(20 * np.log10(2), abs=0.05)


def test_top_db_floors_the_spectrogram_below_its_peak():
    spectrogram = LogMelExtractor(LogMelConfig(dtype="float32", top_db=60.0))(
        tone(1000, 3.5, 16_000), 16_000
    )
    assert spectrogram.max() - spectrogram.min() == pytest.approx(60.0, abs=1e-3)


def test_a_44khz_stereo_file_gives_the_bands_of_the_16khz_mono_one(tmp_path):
    mono = tone(1000, 3.5, 16_000) + tone(3000, 3.5, 16_000, amplitude=0.2)
    left = tone(1000, 3.5, 44_100) + tone(3000, 3.5, 44_100, amplitude=0.2)
    # The right channel is silent: down-mixing halves the level (-6 dB) but moves no band.
    media.write_audio(tmp_path / "mono.wav", mono, 16_000)
    media.write_audio(tmp_path / "stereo.wav", np.stack([left, np.zeros_like(left)]), 44_100)

    reference = extract_clip_log_mel(("1001_DFA_ANG_XX", str(tmp_path / "mono.wav")), CONFIG)
    converted = extract_clip_log_mel(("1001_DFA_ANG_XX", str(tmp_path / "stereo.wav")), CONFIG)
    assert converted.array.shape == reference.array.shape == (1, 64, 300)
    reference_profile = reference.array[0].mean(axis=1)
    converted_profile = converted.array[0].mean(axis=1)
    assert loudest_band(converted.array) == loudest_band(reference.array)
    for frequency in (1000, 3000):
        band = expected_band(frequency, CONFIG)
        assert converted_profile[band] - reference_profile[band] == pytest.approx(-6.02, abs=0.3)


def test_energy_centre_ignores_a_steady_noise_floor():
    rate = 16_000
    signal = np.random.default_rng(0).normal(scale=0.01, size=6 * rate).astype(np.float32)
    signal[4 * rate : 5 * rate] += tone(500, 1.0, rate)
    assert energy_centre(signal, 160) == pytest.approx(4.5 * rate, rel=0.01)


def test_a_long_clip_is_cropped_around_its_speech():
    rate = 16_000
    signal = np.zeros(6 * rate, dtype=np.float32)
    signal[4 * rate : 5 * rate] = tone(500, 1.0, rate)
    window = centre_on_speech(signal, 3 * rate, 160)
    assert len(window) == 3 * rate
    burst = np.flatnonzero(np.abs(window) > 0.01)
    # The 1 s burst sits in the middle of the 3 s window: from 1 s to 2 s.
    assert burst[0] == pytest.approx(1 * rate, abs=160)
    assert burst[-1] == pytest.approx(2 * rate, abs=160)


def test_a_crop_never_leaves_the_clip_even_when_speech_is_at_its_edge():
    rate = 16_000
    signal = np.zeros(5 * rate, dtype=np.float32)
    signal[: rate // 2] = tone(500, 0.5, rate)
    window = centre_on_speech(signal, 3 * rate, 160)
    np.testing.assert_array_equal(window, signal[: 3 * rate])


def test_a_short_clip_is_padded_with_its_speech_in_the_middle():
    rate = 16_000
    signal = np.zeros(2 * rate, dtype=np.float32)
    signal[: rate // 2] = tone(500, 0.5, rate)
    window = centre_on_speech(signal, 3 * rate, 160)
    burst = np.flatnonzero(np.abs(window) > 0.01)
    # Centring the burst (0.25 s into the clip) at 1.5 s would need 1.25 s of padding before it;
    # the clip fits in the window with at most 1 s, so it starts at 1 s.
    assert burst[0] == pytest.approx(1 * rate, abs=2)
    assert (burst[0] + burst[-1]) / 2 < 1.5 * rate


def test_the_spectrogram_of_an_offset_burst_is_centred():
    rate = 16_000
    signal = np.zeros(6 * rate, dtype=np.float32)
    signal[rate : 2 * rate] = tone(1000, 1.0, rate)
    spectrogram = LogMelExtractor(CONFIG)(signal, rate)[0, expected_band(1000, CONFIG)]
    loud_frames = np.flatnonzero(spectrogram > spectrogram.max() - 20)
    assert (loud_frames[0] + loud_frames[-1]) / 2 == pytest.approx(150, abs=3)


def test_defective_files_are_rejected_or_flagged(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    media.write_audio(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16_000)
    media.write_audio(tmp_path / "silent.wav", np.zeros(16_000, dtype=np.float32), 16_000)

    missing = extract_clip_log_mel(("a", str(tmp_path / "missing.wav")), CONFIG)
    undecodable = extract_clip_log_mel(("b", str(broken)), CONFIG)
    empty = extract_clip_log_mel(("c", str(tmp_path / "empty.wav")), CONFIG)
    silent = extract_clip_log_mel(("d", str(tmp_path / "silent.wav")), CONFIG)

    assert missing.array is None and missing.issues[0].issue == "undecodable"
    assert undecodable.array is None and undecodable.issues[0].action == "rejected"
    assert empty.array is None and empty.issues[0].issue == "empty_audio"
    assert silent.array is not None and np.isfinite(silent.array).all()
    assert [(i.issue, i.action) for i in silent.issues] == [("silent_audio", "kept")]


def test_a_video_files_audio_track_is_extracted_and_a_silent_film_rejected(tmp_path):
    """Pretraining's extra recordings come in any container: the track of an MP4 gives the
    log-mel its WAV gives (AAC is lossy: close, not equal)."""
    frames = [np.full((32, 32, 3), 128, dtype=np.uint8)] * 25
    speech = tone(440, 1.0, 16_000)
    media.write_container(tmp_path / "talk.mp4", frames, 25.0, speech, 16_000)
    media.write_container(tmp_path / "silent.mp4", frames, 25.0)
    media.write_audio(tmp_path / "talk.wav", speech, 16_000)

    from_video = extract_clip_log_mel(("talk", str(tmp_path / "talk.mp4")), CONFIG)
    from_wav = extract_clip_log_mel(("talk", str(tmp_path / "talk.wav")), CONFIG)
    silent = extract_clip_log_mel(("silent", str(tmp_path / "silent.mp4")), CONFIG)

    assert loudest_band(from_video.array) == loudest_band(from_wav.array)
    assert from_video.array.shape == from_wav.array.shape
    assert silent.array is None
    assert [(i.issue, i.action) for i in silent.issues] == [("no_audio_track", "rejected")]


@pytest.mark.parametrize("mode", ["per_band", "global"])
def test_stats_match_numpy_on_all_frames_and_standardise(mode):
    rng = np.random.default_rng(0)
    spectrograms = [
        rng.normal(loc=-40 + np.arange(8)[:, None], scale=5, size=(1, 8, 30)).astype(np.float16)
        for _ in range(5)
    ]
    stats = spectrogram_stats(iter(spectrograms), mode)
    values = np.concatenate([s[0].astype(np.float64) for s in spectrograms], axis=1)
    axis = 1 if mode == "per_band" else None
    np.testing.assert_allclose(stats["mean"], np.atleast_1d(values.mean(axis=axis)), rtol=1e-9)
    np.testing.assert_allclose(stats["std"], np.atleast_1d(values.std(axis=axis)), rtol=1e-9)
    assert (stats["clips"], stats["frames"]) == (5, 150)

    standardised = np.concatenate(
        [apply_spectrogram_stats(s, stats)[0] for s in spectrograms], axis=1
    )
    assert standardised.dtype == np.float32
    np.testing.assert_allclose(standardised.mean(axis=axis), 0.0, atol=1e-4)
    np.testing.assert_allclose(standardised.std(axis=axis), 1.0, atol=1e-4)


def test_stats_refuse_an_unknown_mode_or_no_data():
    with pytest.raises(ValueError, match="unknown"):
        spectrogram_stats([np.zeros((1, 2, 3))], "per_clip")
    with pytest.raises(ValueError, match="training split is empty"):
        spectrogram_stats([], "global")


def test_bad_configuration_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="hamming"):
        LogMelConfig(window_fn="kaiser")
    with pytest.raises(ValueError, match="float16"):
        LogMelConfig(dtype="int8")
