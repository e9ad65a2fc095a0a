"""Audio from video containers and audio-only files, decoded with PyAV, and writing containers."""

from __future__ import annotations

import numpy as np
import pytest

from avshared import media

FPS, RATE, SECONDS = 25.0, 44_100, 1.2


def _frames(count: int = round(FPS * SECONDS)) -> list[np.ndarray]:
    return [np.full((96, 128, 3), 4 * i, dtype=np.uint8) for i in range(count)]


def _tone(rate: int = RATE, seconds: float = SECONDS, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return 0.3 * np.sin(2 * np.pi * hz * t)


@pytest.mark.parametrize(
    ("suffix", "video_codec", "audio_codec", "rate"),
    [
        (".mp4", "libx264", "aac", 44_100),
        (".mkv", "libx264", "libopus", 48_000),
        (".webm", "libvpx-vp9", "libopus", 48_000),
        (".avi", "mpeg4", "mp3", 44_100),
    ],
)
def test_container_audio_and_video_decode(tmp_path, suffix, video_codec, audio_codec, rate):
    path = tmp_path / f"clip{suffix}"
    tone = _tone(rate)
    media.write_container(
        path, _frames(), FPS, tone, rate, video_codec=video_codec, audio_codec=audio_codec
    )
    samples, sample_rate = media.read_container_audio(path)
    assert sample_rate == rate
    assert samples.shape[0] == 1 and samples.dtype == np.float32
    # Codecs add priming and padding; the tone itself survives: same length within 0.1 s, and
    # its strongest frequency is still 440 Hz.
    assert abs(samples.shape[1] - tone.size) < 0.1 * rate
    spectrum = np.abs(np.fft.rfft(samples[0]))
    assert abs(np.argmax(spectrum) * rate / samples.shape[1] - 440.0) < 5.0
    assert media.probe_video(path).frame_count == len(_frames())


def test_video_without_audio_track_has_no_audio(tmp_path):
    path = tmp_path / "silent_film.mp4"
    media.write_container(path, _frames(), FPS)
    assert media.read_container_audio(path) is None
    assert media.read_any_audio(path) is None


def test_wav_decodes_as_in_training_and_mp3_through_pyav(tmp_path):
    wav = tmp_path / "clip.wav"
    media.write_audio(wav, _tone(16_000), 16_000)
    np.testing.assert_array_equal(media.read_any_audio(wav)[0], media.read_audio(wav)[0])
    decoded, rate = media.read_container_audio(wav)
    np.testing.assert_allclose(decoded, media.read_audio(wav)[0], atol=1e-6)
    assert rate == 16_000


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.mp4", b"", "cannot read"),
        ("text.mp4", b"this is not a video, just words " * 20, "cannot read"),
        ("empty.wav", b"", "cannot read audio"),
        ("absent.mkv", None, "no such file"),
    ],
)
def test_bad_files_raise_media_error_with_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(media.MediaError, match=reason):
        media.read_any_audio(path)
