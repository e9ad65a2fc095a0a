"""Nodes of the demo_data pipeline: a small synthetic corpus in CREMA-D's layout, formats, faults.

The corpus has what the real one has: AudioWAV/*.wav (16 kHz mono PCM), VideoFlash/*.flv (480x360,
30 fps), SentenceFilenames.csv, VideoDemographics.csv, finishedResponses.csv and the two files of
processedResults/, with the same columns and conventions, and the faults its README documents.
Everything follows from `demo_data.seed`: a clip's media depend only on the seed and the clip's
name, so adding actors or sentences leaves the other clips unchanged.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avshared import media
from avshared.crema_d import (
    ABSENT_CLIPS,
    ACTOR_IDS,
    AUDIO_DIR,
    AUDIO_SAMPLE_RATE,
    DEMO_MARKER_FILE,
    EMOTION_LETTERS,
    EMOTIONS,
    LEVEL_VALUES,
    LEVELLED_SENTENCE,
    LEVELS,
    RATING_MODALITIES,
    SENTENCES,
    VIDEO_DIR,
    VIDEO_FPS,
    VIDEO_HEIGHT,
    VIDEO_WIDTH,
    audio_path,
    video_path,
)
from avshared.crowd_ratings import FINISHED_RESPONSES_COLUMNS
from avshared.pipelines.demo_data.crowd import (
    CrowdSettings,
    presentation_clarity,
    simulate_judgements,
)
from avshared.pipelines.demo_data.synthesis import (
    ActorLook,
    ActorVoice,
    FaceStyle,
    SpeechSettings,
    VoiceStyle,
    error_card,
    frame_articulation,
    render_face,
    synthesize_speech,
)

logger = logging.getLogger(__name__)

#: The order in which CREMA-D's stimulus list (SentenceFilenames.csv) gives a sentence's emotions.
STIMULUS_EMOTION_ORDER: tuple[str, ...] = ("NEU", "HAP", "SAD", "ANG", "FEA", "DIS")
NO_FAULT = "none"
#: The faults of the real corpus (README "do not display correctly") that the demo reproduces, with
#: the crowd presentations each one spoils: their raters saw or heard nothing of the acted emotion.
FAULT_SPOILS: dict[str, frozenset[str]] = {
    "silent_stub": frozenset(
        RATING_MODALITIES
    ),  # error picture, no audio, very short (1076_MTI_SAD_XX)
    "short_video": frozenset({"face", "audiovisual"}),  # very short video (1076_MTI_NEU_XX)
    "no_duration_video": frozenset(
        {"face", "audiovisual"}
    ),  # video with no duration (1064_TIE_SAD_XX)
    "all_emotions_long": frozenset(
        RATING_MODALITIES
    ),  # ~1 min, every emotion of IEO (1064_IEO_DIS_MD)
    # Damaged in the copy, not when it was rated: random bytes instead of a Flash video, and a WAV
    # left as the Git LFS pointer that a download without `git lfs` leaves.
    "unreadable_video": frozenset(),
    "lfs_pointer_audio": frozenset(),
}
#: `demo_data.actors` / `demo_data.sentences` value for every actor / sentence of CREMA-D.
ALL = "all"
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {size}\n"
_STUB_SECONDS = 0.1
_STUB_FRAMES = 6
_SHORT_VIDEO_FRAMES = 9
_PLAN_STREAM, _MEDIA_STREAM = 0, 1


def _clip_rng(seed: int, clip: str, stream: int) -> np.random.Generator:
    """A generator that depends only on the seed, the clip's name and what it is used for."""
    return np.random.default_rng([int(seed), zlib.crc32(clip.encode()), stream])


def plan_actors(demo: dict[str, Any]) -> pd.DataFrame:
    """The demo's actors: VideoDemographics.csv's columns plus the voice and look their clips get.

    Columns: ActorID, Age, Sex, Race, Ethnicity, pitch_hz, formant_scale, face_width, face_height,
    face_dx, face_dy, skin_tone, hair_tone, backdrop_tone, backdrop_warmth.
    """
    actor_ids = list(ACTOR_IDS) if demo["actors"] == ALL else [int(a) for a in demo["actors"]]
    if (
        not actor_ids
        or len(set(actor_ids)) != len(actor_ids)
        or not all(1000 <= actor <= 9999 for actor in actor_ids)
    ):
        raise ValueError(
            f"demo_data.actors must be {ALL!r} or distinct 4-digit actor ids (CREMA-D uses "
            f"1001-1091), got "
            f"{demo['actors']}"
        )
    people, voices, looks = demo["demographics"], demo["voices"], demo["looks"]
    races = list(people["race_shares"])
    race_weights = np.array([people["race_shares"][race] for race in races], dtype=float)
    rows = []
    for actor in actor_ids:
        rng = np.random.default_rng([int(demo["seed"]), actor, _PLAN_STREAM])
        sex = "Female" if rng.random() < people["female_share"] else "Male"
        pitch_mean, pitch_sd = voices["pitch_hz"][sex]
        formant_mean, formant_sd = voices["formant_scale"][sex]
        width = rng.uniform(*looks["face_width"])
        row = {
            "ActorID": actor,
            "Age": int(rng.integers(people["age_range"][0], people["age_range"][1] + 1)),
            "Sex": sex,
            "Race": races[rng.choice(len(races), p=race_weights / race_weights.sum())],
            "Ethnicity": "Hispanic" if rng.random() < people["hispanic_share"] else "Not Hispanic",
            "pitch_hz": rng.normal(pitch_mean, pitch_sd),
            "formant_scale": rng.normal(formant_mean, formant_sd),
            "face_width": width,
            "face_height": width * rng.uniform(*looks["face_aspect"]),
            "face_dx": rng.uniform(-1, 1) * looks["max_offset"][0],
            "face_dy": rng.uniform(-1, 1) * looks["max_offset"][1],
            "skin_tone": rng.random(),
            "hair_tone": rng.random(),
            "backdrop_tone": rng.random(),
        }
        # Drawn after the other looks, so that adding it left every earlier draw as it was.
        warm, warmth = rng.random() < looks["warm_backdrop_share"], rng.uniform(*looks["warmth"])
        rows.append({**row, "backdrop_warmth": warmth if warm else 0.0})
    return pd.DataFrame(rows)


def acted_versions(sentence: str) -> list[tuple[str, str]]:
    """(emotion, level) of each clip of a sentence, in the stimulus list's order."""
    if sentence == LEVELLED_SENTENCE:
        return [("NEU", "XX")] + [
            (emotion, level) for emotion in STIMULUS_EMOTION_ORDER[1:] for level in LEVELS[:3]
        ]
    return [(emotion, "XX") for emotion in STIMULUS_EMOTION_ORDER]


def plan_clips(actors: pd.DataFrame, demo: dict[str, Any]) -> pd.DataFrame:
    """Every clip of the demo corpus, in CREMA-D's stimulus order, with how expressively it's acted.

    Expressiveness (0 = neutral delivery, 1 = the emotion's full profile) is drawn per clip and
    channel and scaled by the level's intensity. Columns: clip, stimulus_number, actor, sentence,
    emotion, level, voice_expressiveness, face_expressiveness, fault. The 20 clips that CREMA-D
    lacks (crema_d.ABSENT_CLIPS) are left out too, so all actors and sentences give its 7,442.
    """
    wanted = list(SENTENCES) if demo["sentences"] == ALL else list(demo["sentences"])
    unknown = sorted(set(wanted) - set(SENTENCES))
    if unknown:
        raise ValueError(
            f"demo_data.sentences has unknown sentence code(s) {unknown}; known: {list(SENTENCES)}"
        )
    sentences = [sentence for sentence in SENTENCES if sentence in set(wanted)]
    intensity = _level_intensity(demo)
    shapes = demo["expressiveness"]
    rows = []
    for actor in actors["ActorID"]:
        for sentence in sentences:
            for emotion, level in acted_versions(sentence):
                clip = f"{actor:04d}_{sentence}_{emotion}_{level}"
                if clip in ABSENT_CLIPS:
                    continue
                rng = _clip_rng(demo["seed"], clip, _PLAN_STREAM)
                rows.append(
                    {
                        "clip": clip,
                        "actor": int(actor),
                        "sentence": sentence,
                        "emotion": emotion,
                        "level": level,
                        "voice_expressiveness": intensity[level] * rng.beta(*shapes["voice"]),
                        "face_expressiveness": intensity[level] * rng.beta(*shapes["face"]),
                    }
                )
    plan = pd.DataFrame(rows)
    plan.insert(1, "stimulus_number", np.arange(1, len(plan) + 1))
    plan["fault"] = _planned_faults(plan["clip"], demo.get("faults") or {})
    return plan


def _level_intensity(demo: Mapping[str, Any]) -> dict[str, float]:
    intensity = {level: float(value) for level, value in demo["level_intensity"].items()}
    missing = sorted(set(LEVELS) - set(intensity))
    if missing:
        raise ValueError(
            f"demo_data.level_intensity lacks level(s) {missing}; give all of {LEVELS}"
        )
    return intensity


def _planned_faults(clips: pd.Series, faults: Mapping[str, str]) -> pd.Series:
    unknown = {clip: kind for clip, kind in faults.items() if kind not in FAULT_SPOILS}
    if unknown:
        raise ValueError(
            f"demo_data.faults has unknown kind(s) {unknown}; known kinds: {sorted(FAULT_SPOILS)}"
        )
    absent = sorted(set(faults) - set(clips))
    if absent:
        logger.warning(
            "demo_data.faults names clips that the demo does not generate, skipped: %s "
            "(add their actors and sentences to demo_data.actors / demo_data.sentences)",
            absent,
        )
    return clips.map(lambda clip: faults.get(clip, NO_FAULT)).astype("str")


@dataclass(frozen=True)
class _RenderContext:
    """What every clip's rendering shares; small and picklable for worker processes."""

    root: Path
    seed: int
    speech: SpeechSettings
    voice_profiles: Mapping[str, Mapping[str, float]]
    face_profiles: Mapping[str, Mapping[str, float]]
    level_intensity: Mapping[str, float]


def render_media(
    clip_plan: pd.DataFrame, actors: pd.DataFrame, crema_d_root: str, demo: dict[str, Any]
) -> pd.DataFrame:
    """Write each planned clip's WAV and FLV under the root; return the plan with what was written.

    Refuses a non-empty root that this generator did not make (it may be a real CREMA-D copy), and
    removes media left there by an earlier, larger demo. Adds columns audio_seconds, video_frames.
    """
    root = Path(crema_d_root)
    _claim_root(root, demo)
    context = _RenderContext(
        root=root,
        seed=int(demo["seed"]),
        speech=_speech_settings(demo["speech"]),
        voice_profiles=_profiles(demo, "voice_profiles"),
        face_profiles=_profiles(demo, "face_profiles"),
        level_intensity=_level_intensity(demo),
    )
    actor_rows = actors.set_index("ActorID")
    jobs = [
        (clip, actor_rows.loc[clip["actor"]].to_dict())
        for clip in clip_plan.to_dict(orient="records")
    ]
    render = partial(_render_clip, context)
    workers = max(1, int(demo.get("workers", 1)))
    facts = []
    with ProcessPoolExecutor(workers) if workers > 1 else _InProcess() as pool:
        for done, fact in enumerate(pool.map(render, jobs, chunksize=8), start=1):
            facts.append(fact)
            if done % 100 == 0 or done == len(jobs):
                logger.info("demo_data: rendered %d of %d clips into %s", done, len(jobs), root)
    _remove_stale_media(root, set(clip_plan["clip"]))
    return pd.concat([clip_plan.reset_index(drop=True), pd.DataFrame(facts)], axis=1)


class _InProcess:
    """The `map` of an executor, run here: no worker processes for a single worker."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    @staticmethod
    def map(function, items, chunksize: int = 1):
        return map(function, items)


def _claim_root(root: Path, demo: Mapping[str, Any]) -> None:
    marker = root / DEMO_MARKER_FILE
    if root.exists() and any(root.iterdir()) and not marker.is_file():
        raise FileExistsError(
            f"{root} is not empty and was not written by the demo generator (no "
            f"{DEMO_MARKER_FILE}): it may hold a real CREMA-D copy, which demo_data never "
            "overwrites. Generate the demo elsewhere (kedro run --pipelines=demo_data "
            "--params=crema_d_root=<new folder>) or, if the folder is disposable, empty it first."
        )
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        json.dumps(
            {
                "generator": "avshared demo_data pipeline (synthetic, not CREMA-D recordings)",
                "seed": int(demo["seed"]),
                "actors": demo["actors"],  # a list of ids, or "all"
                "sentences": demo["sentences"],
            },
            indent=2,
        )
        + "\n"
    )


def _remove_stale_media(root: Path, clips: set[str]) -> None:
    for folder, suffix in ((AUDIO_DIR, ".wav"), (VIDEO_DIR, ".flv")):
        for path in (root / folder).glob(f"*{suffix}"):
            if path.stem not in clips:
                path.unlink()


def _speech_settings(speech: Mapping[str, Any]) -> SpeechSettings:
    return SpeechSettings(
        sample_rate=AUDIO_SAMPLE_RATE,
        syllable_s=float(speech["syllable_s"]),
        word_gap_s=float(speech["word_gap_s"]),
        take_gap_s=float(speech["take_gap_s"]),
        edge_silence_s=(float(speech["edge_silence_s"][0]), float(speech["edge_silence_s"][1])),
        speech_rms_dbfs=float(speech["speech_rms_dbfs"]),
        noise_floor_dbfs=float(speech["noise_floor_dbfs"]),
    )


def _profiles(demo: Mapping[str, Any], key: str) -> dict[str, dict[str, float]]:
    profiles = {emotion: dict(cues or {}) for emotion, cues in demo[key].items()}
    missing = sorted(set(EMOTIONS) - set(profiles))
    if missing:
        raise ValueError(f"demo_data.{key} lacks emotion(s) {missing}; give all of {EMOTIONS}")
    return profiles


def _render_clip(context: _RenderContext, job: tuple[dict, dict]) -> dict[str, float | int]:
    """Synthesize one clip's voice and face, write them, return its audio length and frame count."""
    clip, actor = job
    rng = _clip_rng(context.seed, clip["clip"], _MEDIA_STREAM)
    if clip["fault"] == "all_emotions_long":
        # Like 1064_IEO_DIS_MD: the levelled sentence, acted in every emotion and level in turn.
        versions = [
            (emotion, context.level_intensity[level], context.level_intensity[level])
            for emotion, level in acted_versions(LEVELLED_SENTENCE)
        ]
        sentence = SENTENCES[LEVELLED_SENTENCE]
    else:
        versions = [(clip["emotion"], clip["voice_expressiveness"], clip["face_expressiveness"])]
        sentence = SENTENCES[clip["sentence"]]
    speech = synthesize_speech(
        [(sentence, VoiceStyle.acted(context.voice_profiles[e], v)) for e, v, _ in versions],
        ActorVoice(actor["pitch_hz"], actor["formant_scale"]),
        context.speech,
        rng,
    )
    frame_count = round(speech.duration_s * VIDEO_FPS)
    look = ActorLook(
        **{name: actor[name] for name in ActorLook.__dataclass_fields__},
    )
    frames = render_face(
        [FaceStyle.acted(context.face_profiles[e], f) for e, _, f in versions],
        speech.take_starts_s,
        look,
        frame_articulation(speech, frame_count, VIDEO_FPS),
        size=(VIDEO_WIDTH, VIDEO_HEIGHT),
        fps=VIDEO_FPS,
        rng=rng,
    )
    samples = speech.samples
    wav, flv = audio_path(context.root, clip["clip"]), video_path(context.root, clip["clip"])
    if clip["fault"] == "silent_stub":
        samples = np.zeros(round(_STUB_SECONDS * AUDIO_SAMPLE_RATE), np.float32)
        frame_count = _STUB_FRAMES
        frames = iter([error_card((VIDEO_WIDTH, VIDEO_HEIGHT))] * frame_count)
    elif clip["fault"] == "short_video":
        frame_count = _SHORT_VIDEO_FRAMES
        frames = islice(frames, frame_count)
    media.write_audio(wav, samples, AUDIO_SAMPLE_RATE)
    if clip["fault"] == "no_duration_video":
        frame_count = 0
        media.write_empty_video(flv)
    else:
        media.write_video(flv, frames, VIDEO_FPS)
    if clip["fault"] == "unreadable_video":
        flv.write_bytes(rng.bytes(flv.stat().st_size))
    elif clip["fault"] == "lfs_pointer_audio":
        digest = rng.bytes(32).hex()
        wav.write_text(_LFS_POINTER.format(digest=digest, size=wav.stat().st_size))
    return {"audio_seconds": len(samples) / AUDIO_SAMPLE_RATE, "video_frames": frame_count}


def list_sentence_filenames(clip_truth: pd.DataFrame) -> pd.DataFrame:
    """SentenceFilenames.csv: the clips in stimulus order (Stimulus_Number, Filename)."""
    ordered = clip_truth.sort_values("stimulus_number")
    return pd.DataFrame(
        {"Stimulus_Number": ordered["stimulus_number"].to_numpy(), "Filename": ordered["clip"]}
    ).reset_index(drop=True)


def describe_actors(actors: pd.DataFrame, clip_truth: pd.DataFrame) -> pd.DataFrame:
    """VideoDemographics.csv: ActorID, Age, Sex, Race, Ethnicity of the actors with clips."""
    present = actors[actors["ActorID"].isin(clip_truth["actor"])]
    return present[["ActorID", "Age", "Sex", "Race", "Ethnicity"]].reset_index(drop=True)


def simulate_crowd_responses(
    clip_truth: pd.DataFrame, crowd: dict[str, Any], seed: int
) -> pd.DataFrame:
    """finishedResponses.csv: one row per crowd judgement, in the real file's columns.

    Raters judge what the media show: a clip's clarity per presentation is the expressiveness it
    was rendered with, and nothing for presentations its fault spoils. The index (1, 2, ...) is the
    file's unnamed first column. dispVal holds the displayed level's code and dispLevel its value
    (20, 50, 80; empty for XX).
    """
    settings = CrowdSettings.from_params(crowd)
    clarity = presentation_clarity(
        clip_truth["voice_expressiveness"].to_numpy(float),
        clip_truth["face_expressiveness"].to_numpy(float),
        settings.audiovisual_voice_weight,
    )
    spoils = [FAULT_SPOILS.get(fault, frozenset()) for fault in clip_truth["fault"]]
    for modality in RATING_MODALITIES:
        spoiled = np.array([modality in spoiled_by for spoiled_by in spoils], dtype=bool)
        clarity[modality] = np.where(spoiled, 0.0, clarity[modality])
    judgements = simulate_judgements(clip_truth, clarity, settings, seed)
    clips = clip_truth.iloc[judgements["clip"].to_numpy()].reset_index(drop=True)
    rater = judgements["rater"].to_numpy() + 1
    responses = pd.DataFrame(
        {
            "localid": rater,
            "pos": judgements["pos"].to_numpy(),
            "ans": judgements["emotion"] + "_" + judgements["level"].astype(str),
            "ttr": judgements["response_time_ms"].to_numpy(),
            "queryType": judgements["query_type"].to_numpy(),
            "numTries": judgements["extra_clicks"].to_numpy(),
            "clipNum": clips["stimulus_number"].to_numpy(),
            "questNum": judgements["question"].to_numpy(),
            "subType": 4,  # the final emotion response, as in every row of the real file
            "clipName": clips["clip"].to_numpy(),
            "sessionNums": rater,  # one session per rater
            "respEmo": judgements["emotion"].to_numpy(),
            "respLevel": judgements["level"].to_numpy(),
            "dispEmo": clips["emotion"].map(EMOTION_LETTERS).to_numpy(),
            "dispVal": clips["level"].to_numpy(),
            "dispLevel": pd.array(clips["level"].map(LEVEL_VALUES), dtype="Int64"),
        }
    )
    responses.index = pd.RangeIndex(1, len(responses) + 1)
    return responses.loc[:, list(FINISHED_RESPONSES_COLUMNS)]
