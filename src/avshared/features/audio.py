"""Log-mel spectrograms of a fixed duration centred on the speech, computed with torchaudio.

Each clip becomes a ``(1, n_mels, frames)`` array of decibels: down-mixed to mono, resampled to
``sample_rate``, cut (or zero-padded) to a window centred on its energy mass, then
``MelSpectrogram(center=False)`` + ``AmplitudeToDB``. With ``center=False`` frame ``t`` covers
samples ``[t * hop, t * hop + n_fft)``, so the window is ``n_fft + (frames - 1) * hop`` samples
long, with ``frames = round(duration_s * sample_rate / hop)``: 48,240 samples and exactly 300 frames
for 3 s at 16 kHz with a 10 ms hop. Normalisation is not applied here: ``spectrogram_stats``
measures it on the training clips and ``apply_spectrogram_stats`` applies it when batches are made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torchaudio

from avshared import media
from avshared.features.store import FeatureIssue, FeatureItem

WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window}
STORAGE_DTYPES = ("float16", "float32")
NORMALISATION_MODES = ("per_band", "global")
#: Frame energies below this percentile are taken as the noise floor when locating the speech.
NOISE_FLOOR_PERCENTILE = 20
#: Smallest standard deviation stats report, so that a constant band cannot divide by zero.
MIN_STD = 1e-5


@dataclass(frozen=True)
class LogMelConfig:
    """The ``features.audio`` parameters; see conf/base/parameters_features.yml."""

    sample_rate: int = 16_000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = 8_000.0
    window_fn: str = "hann"
    power: float = 2.0
    top_db: float | None = 80.0
    duration_s: float = 3.0
    dtype: str = "float16"

    def __post_init__(self) -> None:
        if self.window_fn not in WINDOWS:
            raise ValueError(f"window_fn {self.window_fn!r} unknown; use one of {sorted(WINDOWS)}")
        if self.dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype {self.dtype!r} unsupported; use one of {STORAGE_DTYPES}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if self.frames < 1:
            raise ValueError(f"duration_s {self.duration_s} is shorter than one hop")

    @property
    def frames(self) -> int:
        """Spectrogram frames per clip (T)."""
        return round(self.duration_s * self.sample_rate / self.hop_length)

    @property
    def window_samples(self) -> int:
        """Samples cut from each clip so that ``center=False`` yields exactly ``frames`` frames."""
        return self.n_fft + (self.frames - 1) * self.hop_length


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Down-mix ``(channels, samples)`` to ``(samples,)`` by averaging the channels."""
    return samples.mean(axis=0, dtype=np.float32) if samples.ndim == 2 else samples


def resample(waveform: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono waveform with torchaudio's band-limited sinc interpolation."""
    if sample_rate == target_rate:
        return waveform
    tensor = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    return torchaudio.functional.resample(tensor, sample_rate, target_rate).numpy()


def energy_centre(waveform: np.ndarray, hop: int) -> float:
    """The sample index at the centre of the waveform's energy above its noise floor.

    Energies of hop-sized frames, minus their ``NOISE_FLOOR_PERCENTILE`` percentile so that steady
    background noise does not drag the centre towards the middle; the clip's midpoint when it is
    silent or shorter than one hop.
    """
    frames = len(waveform) // hop
    if frames == 0:
        return len(waveform) / 2
    energy = np.square(waveform[: frames * hop].reshape(frames, hop), dtype=np.float64).sum(axis=1)
    weight = np.clip(energy - np.percentile(energy, NOISE_FLOOR_PERCENTILE), 0.0, None)
    if weight.sum() <= 0:
        return len(waveform) / 2
    return float((weight * (np.arange(frames) + 0.5)).sum() / weight.sum() * hop)


def centre_on_speech(waveform: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Cut ``length`` samples centred on the energy mass, or zero-pad around it when shorter.

    The clip is never cut when it fits: padding places its energy centre as near the window's middle
    as the clip's own length allows.
    """
    centre = energy_centre(waveform, hop)
    if len(waveform) >= length:
        start = int(np.clip(round(centre - length / 2), 0, len(waveform) - length))
        return waveform[start : start + length]
    offset = int(np.clip(round(length / 2 - centre), 0, length - len(waveform)))
    padded = np.zeros(length, dtype=np.float32)
    padded[offset : offset + len(waveform)] = waveform
    return padded


class LogMelExtractor:
    """Decoded samples -> ``(1, n_mels, frames)`` log-mel array; built once per process."""

    def __init__(self, config: LogMelConfig):
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            window_fn=WINDOWS[config.window_fn],
            power=config.power,
            center=False,
        )
        stype = "power" if config.power == 2.0 else "magnitude"
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype=stype, top_db=config.top_db)

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Log-mel of ``(channels, samples)`` or ``(samples,)`` audio at any sample rate."""
        waveform = resample(to_mono(samples), sample_rate, self.config.sample_rate)
        window = centre_on_speech(waveform, self.config.window_samples, self.config.hop_length)
        with torch.no_grad():
            log_mel = self.to_db(self.mel(torch.from_numpy(window).unsqueeze(0)))
        return log_mel.numpy().astype(self.config.dtype)


@lru_cache(maxsize=4)
def _extractor(config: LogMelConfig) -> LogMelExtractor:
    return LogMelExtractor(config)


def extract_clip_log_mel(job: tuple[str, str], config: LogMelConfig) -> FeatureItem:
    """Log-mel of one clip ``(clip_id, media_path)``: a WAV/FLAC file (read as in training), or the
    audio track of any other file FFmpeg reads (``media.read_any_audio``: pretraining's extra
    recordings); a defective file, or a video without audio, is rejected, not raised."""
    clip_id, path = job
    try:
        decoded = media.read_any_audio(path)
    except media.MediaError:
        return FeatureItem(clip_id, None, (FeatureIssue("undecodable", "rejected"),))
    if decoded is None:
        return FeatureItem(clip_id, None, (FeatureIssue("no_audio_track", "rejected"),))
    samples, sample_rate = decoded
    if samples.shape[-1] == 0:
        return FeatureItem(clip_id, None, (FeatureIssue("empty_audio", "rejected"),))
    issues = () if np.any(samples) else (FeatureIssue("silent_audio", "kept"),)
    return FeatureItem(clip_id, _extractor(config)(samples, sample_rate), issues)


def spectrogram_stats(spectrograms: Iterable[np.ndarray], mode: str) -> dict[str, Any]:
    """Mean and standard deviation of log-mels, per mel band or one global pair, in one pass.

    Accumulates sums in float64 one spectrogram at a time, so memory does not grow with the clip
    count. Returns ``{"mode", "mean", "std", "clips", "frames"}`` with ``mean``/``std`` lists of
    ``n_mels`` values (per_band) or of one value (global).
    """
    if mode not in NORMALISATION_MODES:
        raise ValueError(f"normalisation mode {mode!r} unknown; use one of {NORMALISATION_MODES}")
    total = total_sq = None
    clips = frames = values_per_row = 0
    for spectrogram in spectrograms:
        rows = np.asarray(spectrogram, dtype=np.float64).reshape(-1, spectrogram.shape[-1])
        if mode == "global":
            rows = rows.reshape(1, -1)
        sums, sums_sq = rows.sum(axis=1), np.square(rows).sum(axis=1)
        total = sums if total is None else total + sums
        total_sq = sums_sq if total_sq is None else total_sq + sums_sq
        clips += 1
        frames += spectrogram.shape[-1]
        values_per_row += rows.shape[1]
    if total is None or total_sq is None:
        raise ValueError("no spectrogram to compute statistics from: the training split is empty")
    mean = total / values_per_row
    std = np.sqrt(np.clip(total_sq / values_per_row - np.square(mean), 0.0, None))
    return {
        "mode": mode,
        "mean": mean.tolist(),
        "std": np.maximum(std, MIN_STD).tolist(),
        "clips": clips,
        "frames": frames,
    }


def apply_spectrogram_stats(spectrogram: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """Standardise a ``(..., n_mels, frames)`` log-mel with ``spectrogram_stats``, as float32."""
    mean = np.asarray(stats["mean"], dtype=np.float32).reshape(-1, 1)
    std = np.asarray(stats["std"], dtype=np.float32).reshape(-1, 1)
    return (np.asarray(spectrogram, dtype=np.float32) - mean) / std
