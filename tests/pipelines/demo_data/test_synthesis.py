"""The synthetic voice and face: deterministic, and their cues move the way the profiles say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avshared.crema_d import SENTENCES
from avshared.features import video
from avshared.features.face_detector import box_iou
from avshared.features.video import FaceFramesConfig
from avshared.pipelines.demo_data.synthesis import (
    ActorLook,
    ActorVoice,
    FaceStyle,
    SpeechSettings,
    VoiceStyle,
    frame_articulation,
    render_face,
    syllable_vowels,
    synthesize_speech,
    take_index_at,
)

SETTINGS = SpeechSettings(
    sample_rate=16_000,
    syllable_s=0.19,
    word_gap_s=0.05,
    take_gap_s=1.0,
    edge_silence_s=(0.3, 0.3),
    speech_rms_dbfs=-26.0,
    noise_floor_dbfs=-62.0,
)
VOICE = ActorVoice(pitch_hz=120.0, formant_scale=1.0)
LOOK = ActorLook(
    face_width=80.0,
    face_height=105.0,
    face_dx=0.0,
    face_dy=0.0,
    skin_tone=0.6,
    hair_tone=0.2,
    backdrop_tone=0.7,
)
EYE_WHITE = np.array([245, 245, 240])


def speak(style: VoiceStyle, seed: int = 0, sentence: str = "DFA"):
    return synthesize_speech(
        [(SENTENCES[sentence], style)], VOICE, SETTINGS, np.random.default_rng(seed)
    )


def median_pitch_hz(samples: np.ndarray, sample_rate: int) -> float:
    """Median autocorrelation pitch of the loud 40 ms windows."""
    window = round(0.04 * sample_rate)
    level = np.sqrt(np.mean(samples**2))
    pitches = []
    for start in range(0, len(samples) - window, window):
        chunk = samples[start : start + window].astype(float)
        if np.sqrt(np.mean(chunk**2)) < level:
            continue
        correlation = np.correlate(chunk, chunk, mode="full")[window - 1 :]
        low, high = sample_rate // 500, sample_rate // 60  # 60-500 Hz
        pitches.append(sample_rate / (low + int(np.argmax(correlation[low:high]))))
    return float(np.median(pitches))


def test_syllables_follow_the_sentence_words():
    assert syllable_vowels("It's eleven o'clock") == [["i"], ["e", "e", "e"], ["o", "o"]]
    assert [len(word) for word in syllable_vowels(SENTENCES["DFA"])] == [1, 2, 1, 2]


def test_a_style_moves_from_neutral_to_the_profile_by_the_expressiveness():
    profile = {"pitch_semitones": 4.0, "speech_rate": 1.2}
    assert VoiceStyle.acted(profile, 0.0) == VoiceStyle()
    halfway = VoiceStyle.acted(profile, 0.5)
    assert halfway.pitch_semitones == pytest.approx(2.0)
    assert halfway.speech_rate == pytest.approx(1.1)
    assert halfway.loudness_db == 0.0  # not in the profile: stays neutral
    assert FaceStyle.acted({"mouth_curve": -0.8}, 1.0).mouth_curve == pytest.approx(-0.8)


def test_an_unknown_cue_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="pitch_semitones"):
        VoiceStyle.acted({"pitchh": 1.0}, 1.0)


def test_speech_is_deterministic_for_a_seed_and_differs_between_seeds():
    first, again, other = speak(VoiceStyle(), 3), speak(VoiceStyle(), 3), speak(VoiceStyle(), 4)
    assert first.samples.dtype == np.float32
    np.testing.assert_array_equal(first.samples, again.samples)
    assert len(first.samples) != len(other.samples) or not np.array_equal(
        first.samples, other.samples
    )


def test_speech_has_silent_edges_and_a_plausible_length():
    speech = speak(VoiceStyle())
    edge = round(0.25 * SETTINGS.sample_rate)
    assert 1.3 < speech.duration_s < 5.0  # CREMA-D's clips last 1.3-5 s
    speech_rms = np.sqrt(np.mean(speech.samples[edge:-edge] ** 2))
    edge_rms = np.sqrt(np.mean(speech.samples[:edge] ** 2))
    assert edge_rms == pytest.approx(10 ** (SETTINGS.noise_floor_dbfs / 20), rel=0.2)
    assert speech_rms > 30 * edge_rms  # > 30 dB above the noise floor
    assert speech.articulation[:edge].max() == 0.0 and speech.articulation.max() > 0.5


def test_voice_cues_change_pitch_loudness_and_tempo():
    neutral = speak(VoiceStyle())
    higher = speak(VoiceStyle(pitch_semitones=12.0))
    ratio = median_pitch_hz(higher.samples, 16_000) / median_pitch_hz(neutral.samples, 16_000)
    assert ratio == pytest.approx(2.0, rel=0.15)  # an octave up

    louder = speak(VoiceStyle(loudness_db=10.0))
    gain = np.sqrt(np.mean(louder.samples**2) / np.mean(neutral.samples**2))
    assert gain == pytest.approx(10 ** (10 / 20), rel=0.1)

    assert speak(VoiceStyle(speech_rate=0.7)).duration_s > neutral.duration_s + 0.3


def test_takes_follow_each_other_with_their_own_start_times():
    takes = [(SENTENCES["IEO"], VoiceStyle()), (SENTENCES["IEO"], VoiceStyle(loudness_db=6.0))]
    speech = synthesize_speech(takes, VOICE, SETTINGS, np.random.default_rng(0))
    first, second = speech.take_starts_s
    assert first == pytest.approx(0.3) and second > first + SETTINGS.take_gap_s
    np.testing.assert_array_equal(take_index_at(speech.take_starts_s, np.array([0.0, 0.5])), [0, 0])
    assert take_index_at(speech.take_starts_s, np.array([second + 0.01]))[0] == 1


def test_the_mouth_follows_the_voice_frame_by_frame():
    speech = speak(VoiceStyle())
    frames = round(speech.duration_s * 30)
    mouth = frame_articulation(speech, frames, 30.0)
    assert mouth.shape == (frames,)
    assert mouth[:8].max() == 0.0  # silent lead-in: mouth at rest
    assert 0.2 < mouth.max() <= 1.0


def render(style: FaceStyle, seed: int = 0, frames: int = 4) -> list[np.ndarray]:
    return list(
        render_face(
            [style],
            [0.0],
            LOOK,
            np.full(frames, 0.5),
            size=(480, 360),
            fps=30.0,
            rng=np.random.default_rng(seed),
        )
    )


def eye_white_pixels(frame: np.ndarray) -> int:
    return int(np.all(np.abs(frame.astype(int) - EYE_WHITE) < 12, axis=-1).sum())


def test_faces_are_rgb_frames_deterministic_for_a_seed():
    frames = render(FaceStyle())
    assert len(frames) == 4
    assert frames[0].shape == (360, 480, 3) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(frames[2], render(FaceStyle())[2])
    assert not np.array_equal(frames[0], render(FaceStyle(), seed=1)[0])


def test_face_cues_are_visible():
    wide = eye_white_pixels(render(FaceStyle(eye_open=1.0))[0])
    narrow = eye_white_pixels(render(FaceStyle(eye_open=-0.6))[0])
    assert wide > 1.5 * narrow > 0
    smile, frown = render(FaceStyle(mouth_curve=1.0))[0], render(FaceStyle(mouth_curve=-1.0))[0]
    assert np.abs(smile.astype(int) - frown.astype(int)).sum(axis=-1).astype(bool).sum() > 300


def test_a_warm_backdrop_is_skin_coloured_so_only_a_real_detector_finds_the_face():
    """On a warm backdrop the skin rule's blob is the wall; BlazeFace still finds the face."""
    warm_look = dataclasses.replace(LOOK, backdrop_warmth=0.6)
    cool, warm = (
        next(render_face([FaceStyle()], [0.0], look, np.full(1, 0.5), size=(480, 360), fps=30.0,
                         rng=np.random.default_rng(0)))
        for look in (LOOK, warm_look)
    )  # fmt: skip
    corners = (slice(0, 20), slice(0, 20))
    assert (video.skin_mask(warm)[corners] == 255).all()
    assert (video.skin_mask(cool)[corners] == 0).all()

    # The face ellipse's box (render_face puts its centre at (240, 0.47 * 360) plus a small sway).
    face = np.array([240 - 80, 169 - 105, 240 + 80, 169 + 105], float)
    for frame, skin_finds_face in ((cool, True), (warm, False)):
        skin = video.clip_face([frame], FaceFramesConfig(face_detector="skin", detection_frames=1))
        assert (box_iou(face, np.array([skin.box], float))[0] >= 0.5) == skin_finds_face
        found = video.clip_face([frame], FaceFramesConfig(detection_frames=1))
        assert box_iou(face, np.array([found.box], float))[0] >= 0.5
