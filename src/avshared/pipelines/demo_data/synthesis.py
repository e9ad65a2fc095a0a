"""Synthetic actors: a voice that speaks a sentence and a cartoon face saying it, acting an emotion.

The cues follow what listeners and viewers use on real actors: pitch level and range, tempo,
loudness, voice quality (brightness, tremor, breath) for the voice; brows, eye opening, mouth
shape and head movement for the face. Each cue moves from the neutral delivery towards an
emotion's profile by the clip's expressiveness, so a weakly acted clip is hard to tell from
neutral, as in CREMA-D. Everything is drawn from the generator passed in: the same seed gives the
same samples and pixels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

import cv2
import numpy as np

#: (F1, F2, F3) in Hz of an adult male voice for the vowel letter that carries a syllable.
_VOWEL_FORMANTS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (390.0, 1990.0, 2550.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (440.0, 1020.0, 2240.0),
    "y": (300.0, 2200.0, 2900.0),
}
_FORMANT_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
#: How far the jaw opens for each vowel letter, which drives the mouth of the face.
_VOWEL_OPENNESS: dict[str, float] = {"a": 1.0, "o": 0.8, "e": 0.65, "u": 0.5, "i": 0.45, "y": 0.4}
_SYLLABLE = re.compile(r"[aeiouy]+")
_HIGHEST_HARMONIC_HZ = 4500.0
_CHUNK_SAMPLES = 8192


def _blend(cls: type, profile: Mapping[str, float], expressiveness: float):
    """An instance of the style dataclass `cls` moved `expressiveness` of the way to `profile`."""
    neutral = cls()
    names = [field.name for field in fields(cls)]
    unknown = sorted(set(profile) - set(names))
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} cue(s) {unknown} in parameters_demo_data.yml; known: {names}"
        )
    return cls(
        **{
            name: getattr(neutral, name)
            + expressiveness
            * (float(profile.get(name, getattr(neutral, name))) - getattr(neutral, name))
            for name in names
        }
    )


@dataclass(frozen=True)
class VoiceStyle:
    """How a sentence is spoken; the defaults are the neutral delivery."""

    pitch_semitones: float = 0.0  # shift of the mean pitch from the actor's own
    pitch_range: float = 1.0  # scale of the intonation's excursions
    speech_rate: float = 1.0  # syllables per second, relative
    loudness_db: float = 0.0
    brightness: float = 0.0  # flatter harmonic spectrum: a pressed, tense voice
    tremolo: float = 0.0  # periodic pitch wobble, as in a trembling voice
    jitter: float = 0.0  # irregular pitch
    breathiness: float = 0.0  # aspiration noise over the voice

    @classmethod
    def acted(cls, profile: Mapping[str, float], expressiveness: float) -> VoiceStyle:
        return _blend(cls, profile, expressiveness)


@dataclass(frozen=True)
class FaceStyle:
    """The expression held while speaking; defaults are the neutral face. Units: about [-1, 1]."""

    brow_raise: float = 0.0
    brow_tilt: float = 0.0  # inner ends up (+, sad, afraid) or down (-, angry)
    eye_open: float = 0.0
    mouth_curve: float = 0.0  # corners up (+) or down (-)
    mouth_width: float = 0.0
    mouth_open: float = 0.0
    mouth_asymmetry: float = 0.0  # one corner and the upper lip raised, as in disgust
    nose_wrinkle: float = 0.0
    head_motion: float = 0.0
    head_drop: float = 0.0

    @classmethod
    def acted(cls, profile: Mapping[str, float], expressiveness: float) -> FaceStyle:
        return _blend(cls, profile, expressiveness)


@dataclass(frozen=True)
class ActorVoice:
    pitch_hz: float
    formant_scale: float


@dataclass(frozen=True)
class ActorLook:
    """An actor's appearance; tones are in [0, 1] along fixed palettes, offsets in pixels.

    ``backdrop_warmth`` in [0, 1] moves the backdrop towards a warm beige, as under warm studio
    light: from about 0.5 on its colour lies inside the skin-colour box that a colour rule takes
    for a face."""

    face_width: float
    face_height: float
    face_dx: float
    face_dy: float
    skin_tone: float
    hair_tone: float
    backdrop_tone: float
    backdrop_warmth: float = 0.0


@dataclass(frozen=True)
class SpeechSettings:
    sample_rate: int
    syllable_s: float
    word_gap_s: float
    take_gap_s: float
    edge_silence_s: tuple[float, float]
    speech_rms_dbfs: float
    noise_floor_dbfs: float


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # float32, mono
    sample_rate: int
    articulation: np.ndarray  # per sample, 0 (mouth at rest) to 1 (wide open vowel)
    take_starts_s: tuple[float, ...]  # when each take begins; the face changes expression there

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def syllable_vowels(sentence: str) -> list[list[str]]:
    """Per word, the vowel letter heading each syllable: a crude, stable stand-in for phonetics."""
    words = re.findall(r"[a-z']+", sentence.lower())
    return [[match.group()[0] for match in _SYLLABLE.finditer(word)] or ["e"] for word in words]


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Two passes of a `width`-sample moving average along the first axis (a triangular window)."""
    if width <= 1:
        return values
    for _ in range(2):
        padded = np.concatenate(
            [np.repeat(values[:1], width, axis=0), values, np.repeat(values[-1:], width, axis=0)]
        )
        cumulative = np.cumsum(padded, axis=0)
        start = width // 2
        values = (
            cumulative[start + width : start + width + len(values)]
            - cumulative[start : start + len(values)]
        ) / width
    return values


def synthesize_speech(
    takes: Sequence[tuple[str, VoiceStyle]],
    voice: ActorVoice,
    settings: SpeechSettings,
    rng: np.random.Generator,
) -> Speech:
    """Speak each (sentence, style) take in turn, with silence around them, as a mono waveform."""
    rate = settings.sample_rate
    lead = rng.uniform(*settings.edge_silence_s)
    # Syllable plan: (start_s, voiced_start_s, end_s, vowel), in time order.
    syllables: list[tuple[float, float, float, str]] = []
    take_starts, take_spans = [], []
    clock = lead
    for take_index, (sentence, style) in enumerate(takes):
        if take_index:
            clock += settings.take_gap_s
        take_starts.append(clock)
        for word in syllable_vowels(sentence):
            for vowel in word:
                length = settings.syllable_s / style.speech_rate * rng.uniform(0.8, 1.25)
                onset = length * rng.uniform(0.15, 0.3)  # the consonant before the vowel
                syllables.append((clock, clock + onset, clock + length, vowel))
                clock += length
            clock += settings.word_gap_s / style.speech_rate * rng.uniform(0.6, 1.4)
        take_spans.append((take_starts[-1], clock))
    total = round((clock + rng.uniform(*settings.edge_silence_s)) * rate)

    voicing = np.zeros(total)
    frication = np.zeros(total)
    openness = np.zeros(total)
    formants = np.tile(np.array(_VOWEL_FORMANTS["e"]), (total, 1))
    contour = np.zeros(total)  # pitch in semitones around the actor's own
    for start, voiced, end, vowel in syllables:
        onset_span = slice(round(start * rate), round(voiced * rate))
        vowel_span = slice(round(voiced * rate), round(end * rate))
        width = vowel_span.stop - vowel_span.start
        voicing[vowel_span] = np.sin(np.linspace(0.0, np.pi, width)) ** 0.6
        frication[onset_span] = np.hanning(onset_span.stop - onset_span.start)
        openness[vowel_span] = _VOWEL_OPENNESS[vowel]
        formants[onset_span.start : vowel_span.stop] = _VOWEL_FORMANTS[vowel]
        contour[onset_span.start : vowel_span.stop] = rng.normal(0.0, 1.5)  # syllable accent
    styles = [style for _, style in takes]
    time_s = np.arange(total) / rate
    take_of = take_index_at(take_starts, time_s)

    def per_sample(cue: str) -> np.ndarray:
        return np.array([getattr(style, cue) for style in styles])[take_of]

    declination = np.zeros(total)
    for span_start, span_end in take_spans:
        span = slice(round(span_start * rate), round(span_end * rate))
        declination[span] = np.linspace(1.5, -1.5, span.stop - span.start)
    contour = _smooth(contour + declination, round(0.06 * rate)) * per_sample("pitch_range")
    jitter_steps = rng.normal(0.0, 0.35, total // 160 + 2)
    jitter = np.interp(np.arange(total) / 160, np.arange(len(jitter_steps)), jitter_steps)
    tremolo = np.sin(2 * np.pi * 5.5 * time_s + rng.uniform(0, 2 * np.pi)) * 0.7
    contour += per_sample("pitch_semitones") + per_sample("jitter") * jitter
    contour += per_sample("tremolo") * tremolo
    pitch_hz = voice.pitch_hz * 2.0 ** (contour / 12.0)
    phase = 2 * np.pi * np.cumsum(pitch_hz) / rate
    formants = _smooth(formants * voice.formant_scale, round(0.02 * rate))
    tilt = np.clip(1.3 - 0.6 * per_sample("brightness"), 0.4, 2.5)

    # Harmonics only where the voice sounds: most of the cost, and silence needs none.
    sounding = np.flatnonzero(voicing > 0)
    harmonic_count = int(_HIGHEST_HARMONIC_HZ // pitch_hz.min())
    orders = np.arange(1, harmonic_count + 1)[:, None]
    voiced = np.zeros(total)
    for first in range(0, len(sounding), _CHUNK_SAMPLES):
        at = sounding[first : first + _CHUNK_SAMPLES]
        frequencies = orders * pitch_hz[at]
        resonance = sum(
            1.0 / (1.0 + ((frequencies - formants[at, i]) / _FORMANT_BANDWIDTHS[i]) ** 2)
            for i in range(3)
        )
        amplitude = orders ** (-tilt[at]) * resonance * (frequencies < _HIGHEST_HARMONIC_HZ)
        voiced[at] = (amplitude * np.sin(orders * phase[at])).sum(axis=0)
    voiced *= voicing
    voiced /= max(float(np.sqrt(np.mean(voiced[voicing > 0.1] ** 2))), 1e-9)

    hiss = np.diff(rng.normal(0.0, 1.0, total + 1))  # differenced white noise: a bright hiss
    speech = voiced + hiss * (0.5 * frication + 0.6 * per_sample("breathiness") * voicing)
    gain = 10.0 ** ((settings.speech_rms_dbfs + per_sample("loudness_db")) / 20.0)
    floor = 10.0 ** (settings.noise_floor_dbfs / 20.0) * rng.normal(0.0, 1.0, total)
    samples = (gain * speech + floor).astype(np.float32)
    return Speech(samples, rate, voicing * openness, tuple(take_starts))


def take_index_at(take_starts_s: Sequence[float], time_s: np.ndarray) -> np.ndarray:
    """Which take is under way at each time; silence before the first belongs to the first."""
    return np.searchsorted(np.asarray(take_starts_s), time_s, side="right").clip(1) - 1


def frame_articulation(speech: Speech, frame_count: int, fps: float) -> np.ndarray:
    """The mouth opening per video frame: the speech's articulation averaged over each frame."""
    edges = np.minimum(
        np.round(np.arange(frame_count + 1) / fps * speech.sample_rate).astype(int),
        len(speech.articulation),
    )
    cumulative = np.concatenate([[0.0], np.cumsum(speech.articulation)])
    widths = np.maximum(np.diff(edges), 1)
    return (cumulative[edges[1:]] - cumulative[edges[:-1]]) / widths


#: A beige wall under warm light: well inside the skin-colour box (Cr about 146, Cb about 108).
_WARM_BACKDROP = np.array([224.0, 190.0, 158.0])


def _palette(tone: float, dark: tuple[int, int, int], light: tuple[int, int, int]) -> np.ndarray:
    return np.array(dark, float) + tone * (np.array(light, float) - np.array(dark, float))


_UNIT_CIRCLE = np.exp(2j * np.pi * np.arange(40) / 40)


def _ellipse(cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return np.stack([cx + ax * _UNIT_CIRCLE.real, cy + ay * _UNIT_CIRCLE.imag], axis=1)


_SUBPIXEL_BITS = 4


def _pixels(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)


class _FacePainter:
    """Draws one actor's face, in face coordinates (origin at the face centre), onto RGB frames."""

    def __init__(self, look: ActorLook, width: int, height: int, light: float) -> None:
        self.look = look
        self.centre = np.array([width / 2 + look.face_dx, height * 0.47 + look.face_dy])
        self.skin = _palette(look.skin_tone, (92, 58, 40), (238, 200, 170)) * light
        self.hair = _palette(look.hair_tone, (25, 20, 18), (150, 110, 60)) * light
        self.lips = 0.6 * self.skin * np.array([0.8, 0.45, 0.45]) + 0.4 * np.array([170.0, 60, 60])
        self.ink = self.skin * 0.35
        self.brows = np.minimum(self.hair, self.skin) * 0.5
        backdrop = _palette(look.backdrop_tone, (55, 65, 90), (200, 200, 190))
        backdrop = (backdrop + look.backdrop_warmth * (_WARM_BACKDROP - backdrop)) * light
        shirt = _palette(1.0 - look.backdrop_tone, (40, 50, 70), (170, 170, 160)) * light
        shade = np.linspace(1.08, 0.88, height)[:, None, None]
        self.background = np.clip(backdrop * shade * np.ones((height, width, 1)), 0, 255).astype(
            np.uint8
        )
        shoulders = _ellipse(width / 2 + look.face_dx, height * 1.02, width * 0.36, height * 0.2)
        cv2.fillPoly(
            self.background, [_pixels(shoulders)], shirt.tolist(), cv2.LINE_AA, _SUBPIXEL_BITS
        )

    def paint(
        self, style: FaceStyle, articulation: float, blink: float, pose: tuple[float, float, float]
    ) -> np.ndarray:
        """One frame: `blink` scales the eye opening, `pose` is (dx, dy, angle in radians)."""
        frame = self.background.copy()
        w, h = self.look.face_width, self.look.face_height
        dx, dy, angle = pose
        rotation = np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        offset = self.centre + np.array([dx, dy])

        def place(points: np.ndarray) -> np.ndarray:
            return _pixels(points @ rotation.T + offset)

        def fill(points: np.ndarray, colour: np.ndarray) -> None:
            cv2.fillPoly(frame, [place(points)], colour.tolist(), cv2.LINE_AA, _SUBPIXEL_BITS)

        def stroke(points: np.ndarray, colour: np.ndarray, thickness: float, closed=False) -> None:
            cv2.polylines(
                frame, [place(points)], closed, colour.tolist(), max(1, round(thickness)),
                cv2.LINE_AA, _SUBPIXEL_BITS,
            )  # fmt: skip

        neck = np.array(
            [[-0.42 * w, 0.5 * h], [0.42 * w, 0.5 * h], [0.45 * w, 1.2 * h], [-0.45 * w, 1.2 * h]]
        )
        fill(neck, self.skin * 0.85)
        fill(_ellipse(0.0, -0.18 * h, 1.06 * w, 0.92 * h), self.hair)
        fill(_ellipse(0.0, 0.0, w, h), self.skin)

        eye_height = 0.1 * w * float(np.clip(1.0 + 0.5 * style.eye_open, 0.2, 1.9)) * blink
        for side in (-1.0, 1.0):
            eye_x, eye_y = side * 0.4 * w, -0.16 * h
            fill(_ellipse(eye_x, eye_y, 0.2 * w, max(eye_height, 0.6)), np.array([245.0, 245, 240]))
            iris = min(0.08 * w, eye_height)
            fill(_ellipse(eye_x, eye_y, 0.08 * w, max(iris, 0.5)), self.ink)
            brow_y = eye_y - 0.17 * h - 0.09 * h * style.brow_raise
            inner = (side * 0.14 * w, brow_y - 0.07 * h * style.brow_tilt)
            outer = (side * 0.62 * w, brow_y + 0.02 * h * style.brow_tilt)
            stroke(np.array([inner, outer]), self.brows, 0.09 * w)

        nose = np.array([[0.0, -0.08 * h], [0.07 * w, 0.2 * h], [-0.04 * w, 0.23 * h]])
        stroke(nose, self.skin * 0.7, 0.03 * w)
        if style.nose_wrinkle > 0:
            crease = self.skin + min(style.nose_wrinkle, 1.0) * (self.ink - self.skin)
            for side in (-1.0, 1.0):
                line = np.array([[side * 0.05 * w, -0.02 * h], [side * 0.16 * w, 0.08 * h]])
                stroke(line, crease, 0.03 * w)

        half_width = 0.3 * w * (1.0 + 0.3 * style.mouth_width)
        x = np.linspace(-1.0, 1.0, 25)
        lift = (0.11 * h * style.mouth_curve) * x**2 + (0.07 * h * style.mouth_asymmetry) * np.clip(
            x, 0.0, None
        )
        opening = 0.015 * h + 0.16 * h * float(
            np.clip(
                0.4 * style.mouth_open + (0.55 + 0.25 * style.mouth_open) * articulation, 0, 1.2
            )
        )
        mouth_y = 0.52 * h - 0.03 * h * style.mouth_asymmetry
        upper = np.stack([x * half_width, mouth_y - lift - opening / 2 * (1 - x**2)], axis=1)
        lower = np.stack([x * half_width, mouth_y - lift + opening / 2 * (1 - x**2)], axis=1)
        fill(np.concatenate([upper, lower[::-1]]), np.array([70.0, 20, 25]))
        stroke(upper, self.lips, 0.05 * w)
        stroke(lower, self.lips, 0.06 * w)
        return frame


def _blink_factors(frame_count: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    factors = np.ones(frame_count)
    shape = np.array([0.6, 0.2, 0.1, 0.3, 0.7])
    time_s = rng.exponential(2.5)
    while (start := int(time_s * fps)) < frame_count:
        end = min(start + len(shape), frame_count)
        factors[start:end] = shape[: end - start]
        time_s += 0.4 + rng.exponential(2.5)
    return factors


def render_face(
    styles: Sequence[FaceStyle],
    take_starts_s: Sequence[float],
    look: ActorLook,
    articulation: np.ndarray,
    *,
    size: tuple[int, int],
    fps: float,
    rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) of the actor saying each take with its expression, one per articulation
    value (the mouth's opening per frame)."""
    width, height = size
    painter = _FacePainter(look, width, height, light=rng.uniform(0.9, 1.1))
    frame_count = len(articulation)
    time_s = np.arange(frame_count) / fps
    take_of = take_index_at(take_starts_s, time_s)
    motion = np.array([style.head_motion for style in styles])[take_of]
    drop = np.array([style.head_drop for style in styles])[take_of]
    phases = rng.uniform(0.0, 2 * np.pi, 4)
    sway = 0.6 * np.sin(2 * np.pi * 0.5 * time_s + phases[0]) + 0.4 * np.sin(
        2 * np.pi * 1.3 * time_s + phases[1]
    )
    dx = (2.0 + 10.0 * motion) * sway
    dy = (1.0 + 5.0 * motion) * np.sin(2 * np.pi * 0.7 * time_s + phases[2]) + 0.12 * height * drop
    angle = np.radians(1.0 + 4.0 * motion) * np.sin(2 * np.pi * 0.4 * time_s + phases[3])
    blinks = _blink_factors(frame_count, fps, rng)
    for i in range(frame_count):
        yield painter.paint(
            styles[take_of[i]], articulation[i], blinks[i], (dx[i], dy[i], angle[i])
        )


def error_card(size: tuple[int, int]) -> np.ndarray:
    """The placeholder picture of a broken clip."""
    width, height = size
    frame = np.full((height, width, 3), (40, 40, 40), np.uint8)
    cv2.putText(frame, "ERROR", (width // 4, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 2.5,
                (230, 40, 40), 5, cv2.LINE_AA)  # fmt: skip
    return frame
