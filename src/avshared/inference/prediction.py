"""Emotion predictions for new recordings, with the features and model of a trained phase.

A recording becomes the model's inputs through the SAME code as the training clips: audio through
``avshared.features.audio`` (down-mix, torchaudio resampling, speech-centred log-mel) and
``apply_spectrogram_stats`` with the phase's training statistics, video through
``avshared.features.video.extract_clip_face_frames`` (frame sampling, face crop). What the phase
used is read from its model specification (``avshared.training.specification``).

A recording longer than the training window (``spec["window_s"]``) is cut into the fewest equal
windows no longer than it; each window is scored as a training clip would be and the probabilities
are averaged. Frames are sampled per window (``num_frames`` in each); one face crop serves the
whole recording. A recording of at most one window takes exactly the training path.

Inputs: CREMA-D's WAV+FLV pairs (matched by file stem), video files with or without an audio
track, and audio-only files. A defective input never stops a run: it gets a ``problem`` and no
probabilities; a missing modality gives a prediction from the other one, ``flags`` saying why.
"""

from __future__ import annotations

import glob
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from avshared import media
from avshared.features.audio import (
    LogMelConfig,
    LogMelExtractor,
    apply_spectrogram_stats,
    resample,
    to_mono,
)
from avshared.features.parallel import worker_pool_options
from avshared.features.video import FaceFramesConfig, extract_clip_face_frames
from avshared.models import restore_model

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (*media.AUDIO_SUFFIXES, *media.VIDEO_SUFFIXES)
#: Issues of the video feature code that mean the frames show no face.
NO_FACE_ISSUE = "no_face"


@dataclass(frozen=True)
class MediaInput:
    """One recording to predict: its name, its audio and/or video file, or why it cannot be read."""

    name: str
    audio_path: str | None = None
    video_path: str | None = None
    problem: str = ""


@dataclass
class PreparedInput:
    """The model inputs of one recording, one row per window, and what happened on the way."""

    name: str
    audio: np.ndarray | None = None  # (windows, 1, n_mels, frames) float32, standardised
    video: np.ndarray | None = None  # (windows, num_frames, 3, size, size) uint8
    flags: list[str] = field(default_factory=list)
    problem: str = ""
    # CPU seconds per stage (audio_decode, video_decode_and_faces, audio_features): what the work
    # costs, whatever else runs on the machine.
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in ("audio", "video") if getattr(self, m) is not None)

    @property
    def windows(self) -> int:
        present = [getattr(self, m) for m in self.modalities]
        return len(present[0]) if present else 0


def find_media_inputs(location: str) -> list[MediaInput]:
    """The recordings at ``location``: a file, a folder (searched recursively for media files) or
    a glob pattern. An audio-only file and a video file with the same stem (CREMA-D's
    AudioWAV/x.wav and VideoFlash/x.flv) are one recording. A location that names nothing, or a
    file of an unsupported type, is returned as an input with its problem."""
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
    elif path.is_file():
        files = [path]
    elif glob.has_magic(location):
        files = sorted(Path(p) for p in glob.glob(location, recursive=True) if Path(p).is_file())
        if not files:
            return [MediaInput(location, problem="missing: no file matches this pattern")]
    else:
        return [MediaInput(location, problem="missing: no such file or folder")]

    inputs, by_stem = [], defaultdict(list)
    for file in files:
        if file.suffix.lower() not in SUPPORTED_SUFFIXES:
            inputs.append(
                MediaInput(
                    str(file),
                    problem=f"wrong format: {file.suffix or 'no extension'} is not one of "
                    f"{', '.join(SUPPORTED_SUFFIXES)}",
                )
            )
        else:
            by_stem[file.stem].append(file)
    for stem, group in by_stem.items():
        audio = [f for f in group if f.suffix.lower() in media.AUDIO_SUFFIXES]
        video = [f for f in group if f.suffix.lower() in media.VIDEO_SUFFIXES]
        if len(audio) == 1 and len(video) == 1:
            inputs.append(MediaInput(stem, str(audio[0]), str(video[0])))
        else:
            inputs.extend(_single_file_input(f) for f in group)
    # In the order of the files (a pair where its audio file is), as a listing shows them.
    return sorted(inputs, key=lambda item: item.audio_path or item.video_path or item.name)


def _single_file_input(file: Path) -> MediaInput:
    if file.suffix.lower() in media.AUDIO_SUFFIXES:
        return MediaInput(str(file), audio_path=str(file))
    # A video file's audio track, if it has one, comes from the same file.
    return MediaInput(str(file), audio_path=str(file), video_path=str(file))


def window_count(duration_s: float, window_s: float) -> int:
    """The fewest equal windows no longer than ``window_s`` that cover ``duration_s``."""
    return max(1, math.ceil(round(duration_s / window_s, 6)))


@lru_cache(maxsize=4)
def _log_mel_extractor(config: LogMelConfig) -> LogMelExtractor:
    return LogMelExtractor(config)


def _audio_windows(
    samples: np.ndarray, sample_rate: int, windows: int, spec: Mapping[str, Any]
) -> np.ndarray:
    """(windows, 1, n_mels, frames) standardised log-mels of equal parts of the recording."""
    config = LogMelConfig(**spec["features"]["audio"])
    extract = _log_mel_extractor(config)
    waveform = resample(to_mono(samples), sample_rate, config.sample_rate)
    return np.stack(
        [
            apply_spectrogram_stats(extract(part, config.sample_rate), spec["spectrogram_stats"])
            for part in np.array_split(waveform, windows)
        ]
    )


def _read_audio(job: MediaInput, prepared: PreparedInput) -> tuple[np.ndarray, int] | None:
    """The recording's audio, or None (flagged) when it has none or it cannot be decoded."""
    if job.audio_path is None:
        return None
    started = time.process_time()
    try:
        decoded = media.read_any_audio(job.audio_path)
    except media.MediaError as err:
        prepared.flags.append(f"audio unreadable ({err})")
        return None
    finally:
        prepared.cpu_seconds["audio_decode"] = time.process_time() - started
    if decoded is None:
        prepared.flags.append("no audio track")
    elif decoded[0].shape[-1] == 0:
        prepared.flags.append("audio unreadable (no samples)")
        return None
    return decoded


def _video_windows(
    job: MediaInput, windows: int | None, spec: Mapping[str, Any], prepared: PreparedInput
) -> tuple[np.ndarray | None, int]:
    """(windows, num_frames, 3, size, size) face crops and the window count; None when the video
    is unusable or shows no face (flagged)."""
    started = time.process_time()
    try:
        if windows is None:
            info = media.probe_video(job.video_path)
            windows = window_count(info.duration_s, spec["window_s"])
        config = FaceFramesConfig(**spec["features"]["video"])
        # num_frames spread over each of `windows` equal spans are exactly the frames of one
        # sampling of windows * num_frames over the whole recording.
        item = extract_clip_face_frames(
            (job.name, job.video_path), replace(config, num_frames=config.num_frames * windows)
        )
    except media.MediaError as err:
        prepared.flags.append(f"video unreadable ({err})")
        return None, windows or 1
    finally:
        prepared.cpu_seconds["video_decode_and_faces"] = time.process_time() - started
    issues = {issue.issue for issue in item.issues}
    if item.array is None:
        prepared.flags.append(f"video unusable ({', '.join(sorted(issues))})")
        return None, windows
    frames = item.array.reshape(windows, config.num_frames, *item.array.shape[1:])
    if NO_FACE_ISSUE in issues:
        if spec["modalities"] == ["video"]:
            action = next(i.action for i in item.issues if i.issue == NO_FACE_ISSUE)
            prepared.flags.append(f"no face found ({action} used, as in training)")
            return frames, windows
        prepared.flags.append("no face found")
        return None, windows
    return frames, windows


def prepare_input(job: MediaInput, spec: Mapping[str, Any]) -> PreparedInput:
    """Decode one recording and compute the model inputs of every window; never raises on a
    defective file (its problem is recorded instead)."""
    prepared = PreparedInput(job.name, problem=job.problem)
    if job.problem:
        return prepared
    modalities = spec["modalities"]
    decoded = _read_audio(job, prepared) if "audio" in modalities else None
    windows = None
    if decoded is not None:
        samples, sample_rate = decoded
        windows = window_count(samples.shape[-1] / sample_rate, spec["window_s"])
    if "video" in modalities and job.video_path is not None:
        prepared.video, windows = _video_windows(job, windows, spec, prepared)
    if decoded is not None:
        started = time.process_time()
        prepared.audio = _audio_windows(*decoded, windows, spec)
        prepared.cpu_seconds["audio_features"] = time.process_time() - started
    if not prepared.modalities:
        needs = " or ".join(modalities)
        found = "; ".join(prepared.flags) or f"the file has no {needs}"
        prepared.problem = f"nothing to predict from: the model needs {needs}; {found}"
        prepared.flags.clear()
    elif "video" in modalities and job.video_path is None and len(modalities) == 2:
        prepared.flags.append("audio-only file")
    return prepared


class EmotionPredictor:
    """A trained phase's model with its preprocessing: media in, emotion probabilities out.

    Args:
        spec: The phase's model specification (``<phase>.model_spec``).
        weights: The model's state_dict (``<phase>.model_weights``).
        workers: Processes decoding recordings in parallel (0: in this process).
        batch_size: Windows per forward pass of the model.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        weights: Mapping[str, torch.Tensor],
        *,
        workers: int = 0,
        batch_size: int = 32,
    ):
        self.spec = dict(spec)
        self.model = restore_model(
            spec["model_kind"], spec["modalities"], spec["model_config"], weights
        )
        self.workers, self.batch_size = workers, batch_size
        #: CPU seconds per stage over every input so far, the model's included.
        self.cpu_seconds: Counter[str] = Counter()

    @property
    def columns(self) -> list[str]:
        """The columns of ``predict``'s table."""
        return [
            "input",
            *(f"p_{emotion}" for emotion in self.spec["emotions"]),
            "predicted",
            "modalities",
            "windows",
            "flags",
            "problem",
            "phase",
            "mlflow_run_id",
            "data",
        ]

    def _prepared(self, inputs: Sequence[MediaInput]) -> Iterator[PreparedInput]:
        """The inputs prepared in order, lazily: workers decode ahead while the model runs."""
        if not self.workers or len(inputs) < 2:
            return (prepare_input(job, self.spec) for job in inputs)
        loader = DataLoader(
            list(inputs),
            batch_size=None,
            collate_fn=partial(prepare_input, spec=self.spec),
            # Enough finished inputs ahead for a whole batch while the model runs on the last one.
            **worker_pool_options(
                self.workers, max(2, math.ceil(self.batch_size / self.workers)), "prediction"
            ),
        )
        return iter(loader)

    def _probabilities(self, group: Sequence[PreparedInput], given: tuple[str, ...]) -> np.ndarray:
        """Mean probability over each input's windows, (inputs, classes); all share ``given``."""
        stacked = {m: np.concatenate([getattr(p, m) for p in group]) for m in given}
        total = len(next(iter(stacked.values())))
        chunks = []
        with torch.inference_mode():
            for start in range(0, total, self.batch_size):
                batch = {
                    m: torch.from_numpy(x[start : start + self.batch_size])
                    for m, x in stacked.items()
                }
                chunks.append(self.model(**batch).softmax(dim=-1).numpy())
        per_window = np.concatenate(chunks)
        bounds = np.cumsum([0, *(p.windows for p in group)])
        return np.stack([per_window[a:b].mean(axis=0) for a, b in pairwise(bounds)])

    def predict(self, inputs: Sequence[MediaInput]) -> pd.DataFrame:
        """One row per input, in order: input, p_<emotion> (empty when there is a problem),
        predicted emotion, modalities used, windows, flags, problem, phase, MLflow run id, data."""
        records: list[dict[str, Any]] = []
        chunk: list[PreparedInput] = []
        threads = torch.get_num_threads()
        if self.workers:
            # The workers already use the cores; more model threads would only contend with them.
            torch.set_num_threads(1)
        try:
            for item in self._prepared(inputs):
                self.cpu_seconds.update(item.cpu_seconds)
                chunk.append(item)
                if len(chunk) == self.batch_size:
                    records += self._records(chunk)
                    chunk = []
            records += self._records(chunk)
        finally:
            torch.set_num_threads(threads)
        return pd.DataFrame.from_records(records, columns=self.columns)

    def _records(self, prepared: Sequence[PreparedInput]) -> list[dict[str, Any]]:
        """The table rows of some prepared inputs; the model runs once per set of modalities."""
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, item in enumerate(prepared):
            if not item.problem:
                groups[item.modalities].append(index)
        probabilities: dict[int, np.ndarray] = {}
        started = time.process_time()
        for given, indices in groups.items():
            rows = self._probabilities([prepared[i] for i in indices], given)
            probabilities |= dict(zip(indices, rows, strict=True))
        self.cpu_seconds["model"] += time.process_time() - started
        emotions = self.spec["emotions"]
        records = []
        for index, item in enumerate(prepared):
            p = probabilities.get(index, np.full(len(emotions), np.nan))
            records.append(
                {
                    "input": item.name,
                    **{f"p_{emotion}": float(v) for emotion, v in zip(emotions, p, strict=True)},
                    "predicted": emotions[int(np.argmax(p))] if index in probabilities else "",
                    "modalities": "+".join(item.modalities) if not item.problem else "",
                    "windows": item.windows if not item.problem else 0,
                    "flags": "; ".join(item.flags),
                    "problem": item.problem,
                    "phase": self.spec["phase"],
                    "mlflow_run_id": self.spec["mlflow_run_id"] or "",
                    "data": self.spec["data_source"],
                }
            )
        return records


#: The printed table's width: it is read in log files, CI output and notebooks as well as terminals.
TABLE_WIDTH = 100


def _fit(text: str, width: int, keep_end: bool = False) -> str:
    """``text`` cut to ``width`` characters, marked with "..." where it was cut."""
    if len(text) <= width:
        return text.ljust(width)
    return "..." + text[-(width - 3) :] if keep_end else text[: width - 3] + "..."


def format_predictions(predictions: pd.DataFrame, demo: bool, max_rows: int = 20) -> str:
    """A plain-text table of the first ``max_rows`` predictions, no line wider than
    ``TABLE_WIDTH``, titled DEMO when the model was trained on generated data: input (its end),
    predicted emotion, its probability, the modalities used and the flags or the problem."""
    title = "DEMO model (trained on generated data, not on CREMA-D): " if demo else ""
    problems = int((predictions["problem"] != "").sum())
    lines = [f"{title}{len(predictions)} predictions, {problems} with a problem"]
    header = f"{'input':<34} {'predicted':<9} {'prob':>5} {'modalities':<11} note"
    lines += [header, "-" * TABLE_WIDTH]
    for row in predictions.head(max_rows).to_dict("records"):
        confidence = max(value for key, value in row.items() if key.startswith("p_"))
        note = row["problem"] or row["flags"]
        line = (
            f"{_fit(row['input'], 34, keep_end=True)} {_fit(row['predicted'], 9)} "
            f"{'' if pd.isna(confidence) else f'{confidence:.3f}':>5} "
            f"{_fit(row['modalities'], 11)} "
        )
        lines.append((line + _fit(note, TABLE_WIDTH - len(line))).rstrip())
    if len(predictions) > max_rows:
        lines.append(f"... and {len(predictions) - max_rows} more rows")
    return "\n".join(lines)
