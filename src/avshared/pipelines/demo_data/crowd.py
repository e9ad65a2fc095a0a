"""Simulated crowd raters, in the protocol of CREMA-D's rating study (Cao et al., 2014).

Each rater judges up to `clips_per_rater` distinct clips in each of the three presentations
(voice only, face only, audio-visual) and never sees a clip twice. For each judgement the rater
picks an emotion and rates its intensity (1-100). The acted emotion wins in proportion to how
clearly the clip shows it in that presentation, which is the expressiveness the media were
rendered with: the ratings and the media of the demo corpus agree, clip by clip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from avshared.crema_d import EMOTION_LETTERS, EMOTIONS, QUERY_TYPES, RATING_MODALITIES


@dataclass(frozen=True)
class CrowdSettings:
    ratings_per_clip: tuple[int, int]  # inclusive range, drawn per clip and presentation
    clips_per_rater: int
    evidence_strength: float
    neutral_bias: float
    confusable: Mapping[str, str]  # emotion -> the emotion it is most often mistaken for
    confusion_share: float
    audiovisual_voice_weight: float
    acted_level_floor: float
    acted_level_span: float
    neutral_level: float
    other_level: float
    level_sd: float
    rater_bias_sd: float
    response_time_median_ms: float
    response_time_spread: float
    extra_clicks_mean: float

    @classmethod
    def from_params(cls, params: Mapping) -> CrowdSettings:
        level = params["level"]
        time = params["response_time_ms"]
        named = set(params["confusable"]) | set(params["confusable"].values())
        unknown = sorted(named - set(EMOTIONS))
        if unknown:
            raise ValueError(
                f"demo_data.crowd.confusable names unknown emotion(s) {unknown}; "
                f"use {list(EMOTIONS)}"
            )
        low, high = params["ratings_per_clip"]
        if not 1 <= low <= high:
            raise ValueError(
                f"demo_data.crowd.ratings_per_clip must be [low, high] with 1 <= low <= high, "
                f"got {params['ratings_per_clip']}"
            )
        return cls(
            ratings_per_clip=(int(low), int(high)),
            clips_per_rater=int(params["clips_per_rater"]),
            evidence_strength=float(params["evidence_strength"]),
            neutral_bias=float(params["neutral_bias"]),
            confusable=dict(params["confusable"]),
            confusion_share=float(params["confusion_share"]),
            audiovisual_voice_weight=float(params["audiovisual_voice_weight"]),
            acted_level_floor=float(level["acted_floor"]),
            acted_level_span=float(level["acted_span"]),
            neutral_level=float(level["neutral"]),
            other_level=float(level["other"]),
            level_sd=float(level["sd"]),
            rater_bias_sd=float(level["rater_bias_sd"]),
            response_time_median_ms=float(time["median"]),
            response_time_spread=float(time["spread"]),
            extra_clicks_mean=float(params["extra_clicks_mean"]),
        )


def assign_raters(
    needs: np.ndarray, clips_per_rater: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Deal judgements to raters until every clip has the judgements it needs in each presentation.

    `needs` is (presentations, clips). Each rater takes, per presentation, the clips that still
    need the most judgements (ties broken at random), skipping clips the rater already has.
    Returns one row per judgement: rater (0-based), presentation (row of `needs`), clip (column).
    """
    remaining = needs.astype(int).copy()
    presentations, clip_count = remaining.shape
    raters, kinds, clips = [], [], []
    rater = 0
    while remaining.sum() > 0:
        seen = np.zeros(clip_count, dtype=bool)
        for kind in range(presentations):
            # Sorting on need plus a random fraction breaks ties at random; seen clips sort last.
            key = np.where(
                seen | (remaining[kind] == 0), -1.0, remaining[kind] + rng.random(clip_count)
            )
            chosen = np.argsort(-key, kind="stable")[:clips_per_rater]
            chosen = chosen[key[chosen] > 0]
            remaining[kind, chosen] -= 1
            seen[chosen] = True
            raters.extend([rater] * len(chosen))
            kinds.extend([kind] * len(chosen))
            clips.extend(chosen.tolist())
        rater += 1
    return pd.DataFrame({"rater": raters, "presentation": kinds, "clip": clips})


def presentation_clarity(
    voice_expressiveness: np.ndarray, face_expressiveness: np.ndarray, voice_weight: float
) -> dict[str, np.ndarray]:
    """How clearly each presentation shows the acted emotion.

    Audio-visual clips show it when the face does or, with `voice_weight`, the voice does (a noisy
    OR): seeing and hearing beats either alone, as CREMA-D's raters found (63.6% against 58.2%).
    """
    return {
        "voice": voice_expressiveness,
        "face": face_expressiveness,
        "audiovisual": 1.0
        - (1.0 - face_expressiveness) * (1.0 - voice_weight * voice_expressiveness),
    }


def choose_emotions(
    acted: np.ndarray, clarity: np.ndarray, settings: CrowdSettings, rng: np.random.Generator
) -> np.ndarray:
    """Index into EMOTIONS of each judgement's answer, given the acted emotion's index and clarity.

    A random-utility choice: the acted emotion (and, less, the one it is confused with) gains
    evidence in proportion to clarity, and neutral is the default answer when a clip shows little.
    """
    evidence = np.zeros((len(acted), len(EMOTIONS)))
    rows = np.arange(len(acted))
    evidence[rows, acted] += settings.evidence_strength * clarity
    partner = np.array([EMOTIONS.index(settings.confusable.get(e, e)) for e in EMOTIONS])[acted]
    evidence[rows, partner] += settings.confusion_share * settings.evidence_strength * clarity
    evidence[:, EMOTIONS.index("NEU")] += settings.neutral_bias
    return np.argmax(evidence + rng.gumbel(size=evidence.shape), axis=1)


def rate_intensity(
    *,
    acted: np.ndarray,
    answered: np.ndarray,
    clarity: np.ndarray,
    rater_bias: np.ndarray,
    settings: CrowdSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """The intensity (1-100) each rater gives to the emotion they answered."""
    neutral = EMOTIONS.index("NEU")
    mean = np.where(
        answered == neutral,
        settings.neutral_level,
        np.where(
            answered == acted,
            settings.acted_level_floor + settings.acted_level_span * clarity,
            settings.other_level,
        ),
    )
    level = mean + rater_bias + rng.normal(0.0, settings.level_sd, len(acted))
    return np.clip(np.round(level), 1, 100).astype(int)


def simulate_judgements(
    clips: pd.DataFrame, clarity: Mapping[str, np.ndarray], settings: CrowdSettings, seed: int
) -> pd.DataFrame:
    """One row per judgement: rater, query type, question order, clip index, answer and intensity.

    `clips` needs `emotion`; `clarity` gives, per modality, one value per row of `clips`.
    """
    rng = np.random.default_rng([seed, 2])
    low, high = settings.ratings_per_clip
    needs = rng.integers(low, high + 1, size=(len(RATING_MODALITIES), len(clips)))
    judgements = assign_raters(needs, settings.clips_per_rater, rng)
    # Each rater answers in a random order (pos); questions are numbered per query type (questNum).
    judgements = judgements.iloc[rng.permutation(len(judgements))]
    judgements = judgements.sort_values("rater", kind="stable").reset_index(drop=True)
    judgements["pos"] = judgements.groupby("rater").cumcount() + 1
    judgements["question"] = judgements.groupby(["rater", "presentation"]).cumcount() + 1
    judgements["query_type"] = [
        QUERY_TYPES[RATING_MODALITIES[k]] for k in judgements["presentation"]
    ]

    acted = np.array([EMOTIONS.index(e) for e in clips["emotion"]])[judgements["clip"]]
    seen_clarity = np.stack([clarity[m] for m in RATING_MODALITIES])[
        judgements["presentation"], judgements["clip"]
    ]
    answered = choose_emotions(acted, seen_clarity, settings, rng)
    rater_bias = rng.normal(0.0, settings.rater_bias_sd, judgements["rater"].max() + 1)
    judgements["emotion"] = [EMOTION_LETTERS[EMOTIONS[i]] for i in answered]
    judgements["level"] = rate_intensity(
        acted=acted,
        answered=answered,
        clarity=seen_clarity,
        rater_bias=rater_bias[judgements["rater"]],
        settings=settings,
        rng=rng,
    )
    judgements["response_time_ms"] = np.round(
        settings.response_time_median_ms
        * np.exp(rng.normal(0.0, settings.response_time_spread, len(judgements)))
    ).astype(int)
    judgements["extra_clicks"] = rng.poisson(settings.extra_clicks_mean, len(judgements))
    return judgements.drop(columns="presentation")
