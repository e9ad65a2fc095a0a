"""Nodes of the ingestion pipeline: from a CREMA-D root to the clip manifest and the rejected clips.

`check_root`, `list_clips` and `probe_clips` look at the file system (probing reads WAV headers
and FLV containers, never decoding the media); `validate_clips` is pure and decides, clip by clip,
whether the clip is usable. Every clip listed in SentenceFilenames.csv or present on disk ends up in
exactly one of the two outputs.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from avshared import crema_d, media

logger = logging.getLogger(__name__)

#: The clip manifest's columns, in order, with their dtypes: later pipelines rely on exactly these.
MANIFEST_DTYPES: dict[str, str] = {
    "clip_id": "str",
    "actor": "int64",
    "sentence": "str",
    "emotion": "str",
    "level": "str",
    "label": "int64",
    "sex": "str",
    "age": "int64",
    "race": "str",
    "ethnicity": "str",
    "audio_path": "str",
    "video_path": "str",
    "sample_rate": "int64",
    "channels": "int64",
    "audio_duration_s": "float64",
    "frame_count": "int64",
    "fps": "float64",
    "width": "int64",
    "height": "int64",
    "video_duration_s": "float64",
}
#: The manifest columns copied from the probe, as they are.
_PROBED_MANIFEST_COLUMNS = (
    "audio_path",
    "video_path",
    "sample_rate",
    "channels",
    "audio_duration_s",
    "frame_count",
    "fps",
    "width",
    "height",
    "video_duration_s",
)
#: The rejected clips' columns: `reason` is a short code, `detail` says what was found, for a human.
REJECT_DTYPES: dict[str, str] = {"clip_id": "str", "stage": "str", "reason": "str", "detail": "str"}

#: What probing adds to each listed clip; a file that could not be probed has a status but no facts.
PROBE_DTYPES: dict[str, str] = {
    "audio_status": "str",
    "audio_error": "str",
    "sample_rate": "Int64",
    "channels": "Int64",
    "audio_frames": "Int64",
    "audio_duration_s": "float64",
    "video_status": "str",
    "video_error": "str",
    "frame_count": "Int64",
    "fps": "float64",
    "width": "Int64",
    "height": "Int64",
    "video_duration_s": "float64",
}

_DEMOGRAPHICS_COLUMNS = {
    "ActorID": "actor",
    "Sex": "sex",
    "Age": "age",
    "Race": "race",
    "Ethnicity": "ethnicity",
}


def check_root(crema_d_root: str) -> str:
    """Return the CREMA-D root as an absolute path, or stop with a way out if it cannot be ingested.

    This node runs before the root's CSV datasets are loaded, so a wrong root gets this explanation
    instead of a dataset loading error.
    """
    root = Path(crema_d_root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"The CREMA-D root {root} does not exist or is not a folder (parameter "
            f"crema_d_root={crema_d_root!r}). "
            f"{crema_d.MISSING_ROOT_HELP}"
        )
    has_media = bool(
        _file_stems(root / crema_d.AUDIO_DIR, ".wav")
        or _file_stems(root / crema_d.VIDEO_DIR, ".flv")
    )
    missing_metadata = [
        name
        for name in (crema_d.SENTENCE_FILENAMES_FILE, crema_d.DEMOGRAPHICS_FILE)
        if not (root / name).is_file()
    ]
    if not has_media and len(missing_metadata) == 2:
        raise FileNotFoundError(
            f"The CREMA-D root {root} is empty: it holds no {crema_d.AUDIO_DIR}/*.wav, no "
            f"{crema_d.VIDEO_DIR}/*.flv and neither {' nor '.join(missing_metadata)}. "
            f"{crema_d.MISSING_ROOT_HELP}"
        )
    if missing_metadata:
        raise FileNotFoundError(
            f"The CREMA-D root {root} lacks {' and '.join(missing_metadata)}, which list the clips "
            f"and the actors; copy them from the dataset's repository. {crema_d.MISSING_ROOT_HELP}"
        )
    if not has_media:
        raise FileNotFoundError(
            f"The CREMA-D root {root} holds the metadata but no media: {crema_d.AUDIO_DIR}/*.wav "
            f"and {crema_d.VIDEO_DIR}/*.flv are absent (the dataset stores them with Git LFS). "
            f"{crema_d.MISSING_ROOT_HELP}"
        )
    return str(root)


def list_clips(sentence_filenames: pd.DataFrame, root: str) -> pd.DataFrame:
    """Every clip named in SentenceFilenames.csv or present as a WAV or FLV file under ``root``.

    Returns one row per clip name, sorted: clip_id, listed (named in SentenceFilenames.csv),
    audio_path, video_path (where the files are or should be), audio_present, video_present.
    """
    if "Filename" not in sentence_filenames.columns:
        raise ValueError(
            f"{crema_d.SENTENCE_FILENAMES_FILE} has no 'Filename' column (found "
            f"{list(sentence_filenames.columns)}): it should be the dataset's own file, with "
            "columns Stimulus_Number, Filename"
        )
    listed = set(sentence_filenames["Filename"].dropna().astype(str).str.strip())
    audio_stems = _file_stems(Path(root) / crema_d.AUDIO_DIR, ".wav")
    video_stems = _file_stems(Path(root) / crema_d.VIDEO_DIR, ".flv")
    clip_ids = sorted(listed | audio_stems | video_stems)
    only_on_disk = len(clip_ids) - len(listed)
    logger.info(
        "%d clips: %d listed in %s, %d more found only on disk",
        len(clip_ids),
        len(listed),
        crema_d.SENTENCE_FILENAMES_FILE,
        only_on_disk,
    )
    return pd.DataFrame(
        {
            "clip_id": pd.Series(clip_ids, dtype="str"),
            "listed": [clip_id in listed for clip_id in clip_ids],
            "audio_path": pd.Series(
                [str(crema_d.audio_path(root, clip_id)) for clip_id in clip_ids], dtype="str"
            ),
            "video_path": pd.Series(
                [str(crema_d.video_path(root, clip_id)) for clip_id in clip_ids], dtype="str"
            ),
            "audio_present": [clip_id in audio_stems for clip_id in clip_ids],
            "video_present": [clip_id in video_stems for clip_id in clip_ids],
        }
    )


def probe_clips(clips: pd.DataFrame, workers: int) -> pd.DataFrame:
    """Add each clip's audio and video facts (PROBE_DTYPES), read by a pool of ``workers`` threads.

    Only headers and containers are read. A file that is absent, unreadable or a Git LFS stub gets
    a status ('missing', 'unreadable', 'lfs_pointer'; 'ok' otherwise) and an error text instead of
    facts: no bad file stops the run.
    """
    if workers < 1:
        raise ValueError(
            f"ingestion.workers must be at least 1, got {workers}: fix it in "
            "conf/base/parameters_ingestion.yml or pass --params=ingestion.workers=4"
        )
    with ThreadPoolExecutor(max_workers=workers) as pool:
        facts = list(
            tqdm(
                pool.map(
                    _probe_clip,
                    clips["audio_path"],
                    clips["audio_present"],
                    clips["video_path"],
                    clips["video_present"],
                ),
                total=len(clips),
                desc="Probing clips",
                unit="clip",
                disable=None,  # a bar on terminals, silence in logs and CI
            )
        )
    probed = pd.DataFrame(facts, columns=list(PROBE_DTYPES)).astype(PROBE_DTYPES)
    return pd.concat([clips.reset_index(drop=True), probed], axis=1)


def validate_clips(
    probed: pd.DataFrame, demographics: pd.DataFrame, limits: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split probed clips into the manifest (MANIFEST_DTYPES) and the rejects (REJECT_DTYPES).

    A clip is rejected for the first problem found, in the order name, actor, audio, video,
    audio-video sync; its detail lists every problem. ``limits`` is the `ingestion` parameters
    block. Raises when no clip at all is usable, since every later pipeline needs some.
    """
    checks = _Limits.from_params(limits)
    actors = _actor_table(demographics)
    manifest_rows: list[dict[str, Any]] = []
    reject_rows: list[dict[str, str]] = []
    for clip in probed.itertuples(index=False):
        clip_id, problems = _parse_name(clip)
        problems += _actor_problems(clip_id, actors)
        problems += _audio_problems(clip, checks) + _video_problems(clip, checks)
        if not problems:
            problems = _sync_problems(clip, checks)
        if problems:
            reject_rows.append(_reject_row(clip.clip_id, problems))
        else:
            manifest_rows.append(_manifest_row(clip, clip_id, actors[clip_id.actor]))

    manifest = _frame(manifest_rows, MANIFEST_DTYPES)
    rejects = _frame(reject_rows, REJECT_DTYPES)
    if manifest.empty:
        raise ValueError(_nothing_usable_message(rejects))
    _log_outcome(manifest, rejects)
    return manifest, rejects


def sort_rejects_by_reason(rejected_clips: pd.DataFrame) -> pd.DataFrame:
    """The rejected clips grouped by stage and reason, for a human reading the CSV report."""
    return rejected_clips.sort_values(["stage", "reason", "clip_id"], ignore_index=True)


def _file_stems(folder: Path, suffix: str) -> set[str]:
    """Names (without ``suffix``) of the regular files in ``folder`` ending in ``suffix``."""
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as entries:
        return {
            entry.name.removesuffix(suffix)
            for entry in entries
            if entry.name.endswith(suffix) and entry.is_file()
        }


def _probe_clip(audio_path: str, has_audio: bool, video_path: str, has_video: bool) -> dict:
    return {**_probe_audio(audio_path, has_audio), **_probe_video(video_path, has_video)}


def _probe_audio(path: str, present: bool) -> dict[str, Any]:
    if not present:
        return {"audio_status": "missing", "audio_error": f"{path} does not exist"}
    try:
        info = media.probe_audio(path)
    except media.MediaError as err:
        return {"audio_status": _unreadable_status(path), "audio_error": str(err)}
    return {
        "audio_status": "ok",
        "audio_error": "",
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "audio_frames": info.frames,
        "audio_duration_s": info.duration_s,
    }


def _probe_video(path: str, present: bool) -> dict[str, Any]:
    if not present:
        return {"video_status": "missing", "video_error": f"{path} does not exist"}
    try:
        info = media.probe_video(path)
    except media.MediaError as err:
        return {"video_status": _unreadable_status(path), "video_error": str(err)}
    return {
        "video_status": "ok",
        "video_error": "",
        "frame_count": info.frame_count,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "video_duration_s": info.duration_s,
    }


def _unreadable_status(path: str) -> str:
    return "lfs_pointer" if media.is_lfs_pointer(path) else "unreadable"


@dataclass(frozen=True)
class _Problem:
    stage: str
    reason: str
    detail: str


_LIMIT_PARAMETERS = (
    "min_duration_s",
    "max_duration_s",
    "max_av_duration_gap_s",
    "fps_range",
    "min_frame_size",
)


@dataclass(frozen=True)
class _Limits:
    min_duration_s: float
    max_duration_s: float
    max_av_duration_gap_s: float | None
    min_fps: float
    max_fps: float
    min_width: int
    min_height: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> _Limits:
        missing = [field for field in _LIMIT_PARAMETERS if field not in params]
        if missing:
            raise ValueError(
                f"the ingestion parameters lack {missing}: see conf/base/parameters_ingestion.yml"
            )
        (min_fps, max_fps), (min_width, min_height) = params["fps_range"], params["min_frame_size"]
        if not params["min_duration_s"] < params["max_duration_s"] or not min_fps < max_fps:
            raise ValueError(
                "ingestion.min_duration_s must be below max_duration_s and fps_range must be "
                f"[low, high]; got {dict(params)}"
            )
        return cls(
            params["min_duration_s"],
            params["max_duration_s"],
            params["max_av_duration_gap_s"],
            min_fps,
            max_fps,
            min_width,
            min_height,
        )


def _actor_table(demographics: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """VideoDemographics.csv as {actor: {sex, age, race, ethnicity}}, checked for usable values."""
    missing = sorted(set(_DEMOGRAPHICS_COLUMNS) - set(demographics.columns))
    if missing:
        raise ValueError(
            f"{crema_d.DEMOGRAPHICS_FILE} lacks the columns {missing} (found "
            f"{list(demographics.columns)}): it should be the dataset's own file"
        )
    table = demographics[list(_DEMOGRAPHICS_COLUMNS)].rename(columns=_DEMOGRAPHICS_COLUMNS)
    incomplete = table[table.isna().any(axis=1)]
    if not incomplete.empty:
        raise ValueError(
            f"{crema_d.DEMOGRAPHICS_FILE} has empty cells for the actors "
            f"{incomplete['actor'].tolist()}: every actor needs its ActorID, Age, Sex, Race and "
            "Ethnicity"
        )
    duplicated = table["actor"][table["actor"].duplicated()]
    if not duplicated.empty:
        raise ValueError(
            f"{crema_d.DEMOGRAPHICS_FILE} lists the actors {sorted(set(duplicated))} more than once"
        )
    table = table.astype({"actor": "int64", "age": "int64"})
    return {row.pop("actor"): row for row in table.to_dict(orient="records")}


def _parse_name(clip: Any) -> tuple[crema_d.ClipId | None, list[_Problem]]:
    try:
        return crema_d.parse_clip_id(clip.clip_id), []
    except ValueError as err:
        return None, [_Problem("name", "bad_name", f"{err}; {_whereabouts(clip)}")]


def _actor_problems(clip_id: crema_d.ClipId | None, actors: Mapping[int, Any]) -> list[_Problem]:
    if clip_id is None or clip_id.actor in actors:
        return []
    detail = f"actor {clip_id.actor} is not in {crema_d.DEMOGRAPHICS_FILE}"
    return [_Problem("demographics", "unknown_actor", detail)]


def _whereabouts(clip: Any) -> str:
    """Where a clip name was found, e.g. 'listed in SentenceFilenames.csv, found AudioWAV/x.wav'."""
    places = [f"listed in {crema_d.SENTENCE_FILENAMES_FILE}"] if clip.listed else []
    places += [
        f"found {Path(path).parent.name}/{Path(path).name}"
        for path, present in (
            (clip.audio_path, clip.audio_present),
            (clip.video_path, clip.video_present),
        )
        if present
    ]
    return ", ".join(places)


def _audio_problems(clip: Any, limits: _Limits) -> list[_Problem]:
    if clip.audio_status != "ok":
        return [_unprobed_problem("audio", clip.audio_status, clip.audio_error, clip)]
    if clip.audio_frames == 0:
        return [_Problem("audio", "empty_audio", "the WAV holds no samples")]
    return _duration_problems("audio", clip.audio_duration_s, limits)


def _video_problems(clip: Any, limits: _Limits) -> list[_Problem]:
    if clip.video_status != "ok":
        return [_unprobed_problem("video", clip.video_status, clip.video_error, clip)]
    if clip.frame_count == 0:
        return [
            _Problem(
                "video",
                "no_video_duration",
                "the FLV reports no duration (0 frames), so its frames cannot be sampled",
            )
        ]
    problems = []
    if not limits.min_fps <= clip.fps <= limits.max_fps:
        problems.append(
            _Problem(
                "video",
                "bad_fps",
                f"the video reports {clip.fps:g} fps, outside fps_range "
                f"[{limits.min_fps:g}, {limits.max_fps:g}]",
            )
        )
    if clip.width < limits.min_width or clip.height < limits.min_height:
        problems.append(
            _Problem(
                "video",
                "low_resolution",
                f"the video is {clip.width}x{clip.height}, under min_frame_size "
                f"{limits.min_width}x{limits.min_height}",
            )
        )
    return problems + _duration_problems("video", clip.video_duration_s, limits)


def _unprobed_problem(stage: str, status: str, error: str, clip: Any) -> _Problem:
    if status == "missing":
        folder = crema_d.AUDIO_DIR if stage == "audio" else crema_d.VIDEO_DIR
        detail = f"no {stage} file in {folder}/ ({_whereabouts(clip)})"
        return _Problem(stage, f"missing_{stage}", detail)
    if status == "lfs_pointer":
        detail = "the file is a Git LFS pointer, not media: run `git lfs pull` in the CREMA-D root"
        return _Problem(stage, "lfs_pointer", detail)
    return _Problem(stage, f"unreadable_{stage}", error)


def _duration_problems(stage: str, duration_s: float, limits: _Limits) -> list[_Problem]:
    if duration_s < limits.min_duration_s:
        return [
            _Problem(
                stage,
                "too_short",
                f"the {stage} lasts {duration_s:.2f} s, "
                f"under min_duration_s={limits.min_duration_s:g}",
            )
        ]
    if duration_s > limits.max_duration_s:
        return [
            _Problem(
                stage,
                "too_long",
                f"the {stage} lasts {duration_s:.2f} s, "
                f"over max_duration_s={limits.max_duration_s:g}",
            )
        ]
    return []


def _sync_problems(clip: Any, limits: _Limits) -> list[_Problem]:
    gap = abs(clip.audio_duration_s - clip.video_duration_s)
    if limits.max_av_duration_gap_s is None or gap <= limits.max_av_duration_gap_s:
        return []
    return [
        _Problem(
            "sync",
            "av_duration_mismatch",
            f"the audio lasts {clip.audio_duration_s:.2f} s but the video "
            f"{clip.video_duration_s:.2f} s, more than max_av_duration_gap_s="
            f"{limits.max_av_duration_gap_s:g} apart",
        )
    ]


def _reject_row(clip_id: str, problems: list[_Problem]) -> dict[str, str]:
    first = problems[0]
    detail = "; ".join([first.detail] + [f"also {p.reason}: {p.detail}" for p in problems[1:]])
    return {"clip_id": clip_id, "stage": first.stage, "reason": first.reason, "detail": detail}


def _manifest_row(clip: Any, clip_id: crema_d.ClipId, actor: dict[str, Any]) -> dict[str, Any]:
    return {
        "clip_id": clip.clip_id,
        "actor": clip_id.actor,
        "sentence": clip_id.sentence,
        "emotion": clip_id.emotion,
        "level": clip_id.level,
        "label": crema_d.EMOTIONS.index(clip_id.emotion),
        **actor,
        **{column: getattr(clip, column) for column in _PROBED_MANIFEST_COLUMNS},
    }


def _frame(rows: Iterable[dict[str, Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(dtypes)).astype(dtypes)
    return frame.sort_values("clip_id", ignore_index=True)


def _nothing_usable_message(rejects: pd.DataFrame) -> str:
    examples = "; ".join(
        f"{row.clip_id}: {row.detail}" for row in rejects.head(3).itertuples(index=False)
    )
    return (
        f"None of the {len(rejects)} clips is usable ({_reason_counts(rejects)}), e.g. {examples}. "
        f"Check that crema_d_root points at a complete corpus. {crema_d.MISSING_ROOT_HELP}"
    )


def _reason_counts(rejects: pd.DataFrame) -> str:
    """'too_long 2, empty_audio 1': the reasons of rejection, most frequent first."""
    return ", ".join(
        f"{reason} {count}" for reason, count in Counter(rejects["reason"]).most_common()
    )


def _log_outcome(manifest: pd.DataFrame, rejects: pd.DataFrame) -> None:
    total = len(manifest) + len(rejects)
    if rejects.empty:
        logger.info("All %d clips are usable", total)
        return
    logger.warning(
        "%d of %d clips are usable; %d rejected (%s): see the rejected_clips_report dataset",
        len(manifest),
        total,
        len(rejects),
        _reason_counts(rejects),
    )
