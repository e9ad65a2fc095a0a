"""CREMA-D's vocabulary: file-name grammar, emotions, levels, sentences, rating modalities, layout.

Everything here is a fact of the dataset (Cao et al., 2014, and the dataset's README), shared by the
pipelines that read a CREMA-D root, whether it holds the real corpus or the generated demo one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The six acted emotions, in the order used for class indices everywhere in avshared.
EMOTIONS: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
#: Columns of a distribution over the emotions (a target, a vote share, predicted probabilities).
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{emotion}" for emotion in EMOTIONS)
#: The parts of a split, in order.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: One-letter codes of the ratings files (tabulatedVotes, summaryTable, finishedResponses).
EMOTION_LETTERS: dict[str, str] = {
    "ANG": "A",
    "DIS": "D",
    "FEA": "F",
    "HAP": "H",
    "NEU": "N",
    "SAD": "S",
}
LETTER_EMOTIONS: dict[str, str] = {letter: emo for emo, letter in EMOTION_LETTERS.items()}
VOTE_COLUMNS: tuple[str, ...] = tuple(EMOTION_LETTERS[e] for e in EMOTIONS)

#: Intensity levels; XX is "unspecified" (every sentence but IEO is acted at XX only).
LEVELS: tuple[str, ...] = ("LO", "MD", "HI", "XX")
#: The numeric value of the displayed level in finishedResponses.csv (`dispLevel`).
LEVEL_VALUES: dict[str, int] = {"LO": 20, "MD": 50, "HI": 80}

#: The twelve sentences, by their three-letter code, in the dataset's order.
SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
#: The only sentence recorded at the four levels; the others are XX only.
LEVELLED_SENTENCE = "IEO"

#: The 91 actors' ids.
ACTOR_IDS: tuple[int, ...] = tuple(range(1001, 1092))
#: Clips of the full actor x sentence x emotion grid that the corpus does not have (7,462 - 20 =
#: 7,442): found by comparing the grid with SentenceFilenames.csv.
ABSENT_CLIPS: frozenset[str] = frozenset(
    {
        "1002_TIE_NEU_XX",
        "1076_ITS_NEU_XX",
        *(f"1008_WSI_{emotion}_XX" for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")),
        *(f"1009_MTI_{emotion}_XX" for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")),
        *(f"1019_ITH_{emotion}_XX" for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")),
    }
)

#: Crowd rating modalities (what the raters were shown) and their `queryType` in the ratings files;
#: not the model's input modalities (audio, video).
RATING_MODALITIES: tuple[str, ...] = ("voice", "face", "audiovisual")
QUERY_TYPES: dict[str, int] = {"voice": 1, "face": 2, "audiovisual": 3}

#: Media formats of the real corpus.
AUDIO_SAMPLE_RATE = 16_000
VIDEO_WIDTH, VIDEO_HEIGHT = 480, 360
VIDEO_FPS = 30.0

#: Where each file lives under a CREMA-D root, as in the dataset's repository.
AUDIO_DIR = "AudioWAV"
VIDEO_DIR = "VideoFlash"
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
SENTENCE_FILENAMES_FILE = "SentenceFilenames.csv"
TABULATED_VOTES_FILE = "processedResults/tabulatedVotes.csv"
SUMMARY_TABLE_FILE = "processedResults/summaryTable.csv"
FINISHED_RESPONSES_FILE = "finishedResponses.csv"

_CLIP_ID = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$"
)


@dataclass(frozen=True)
class ClipId:
    """A parsed clip name such as ``1001_DFA_ANG_XX``."""

    actor: int
    sentence: str
    emotion: str
    level: str

    @property
    def name(self) -> str:
        return f"{self.actor:04d}_{self.sentence}_{self.emotion}_{self.level}"


def parse_clip_id(name: str) -> ClipId:
    """Parse ``<Actor>_<Sentence>_<Emotion>_<Level>``; raise ValueError naming the bad part."""
    match = _CLIP_ID.match(name)
    if match is None:
        raise ValueError(
            f"{name!r} is not a CREMA-D clip name: expected "
            "<4-digit actor>_<sentence>_<emotion>_<level>, "
            "for example 1001_DFA_ANG_XX"
        )
    parts = match.groupdict()
    if parts["sentence"] not in SENTENCES:
        raise ValueError(
            f"{name!r}: unknown sentence {parts['sentence']!r}; known: {sorted(SENTENCES)}"
        )
    if parts["emotion"] not in EMOTIONS:
        raise ValueError(f"{name!r}: unknown emotion {parts['emotion']!r}; known: {list(EMOTIONS)}")
    if parts["level"] not in LEVELS:
        raise ValueError(f"{name!r}: unknown level {parts['level']!r}; known: {list(LEVELS)}")
    return ClipId(int(parts["actor"]), parts["sentence"], parts["emotion"], parts["level"])


def audio_path(root: str | Path, clip_id: str) -> Path:
    return Path(root) / AUDIO_DIR / f"{clip_id}.wav"


def video_path(root: str | Path, clip_id: str) -> Path:
    return Path(root) / VIDEO_DIR / f"{clip_id}.flv"


#: A file that the demo_data pipeline writes first into the root it generates: results computed
#: from a root holding it are demo results, and only such a root may be rewritten by the generator.
DEMO_MARKER_FILE = ".avshared-demo"


def is_demo_root(root: str | Path) -> bool:
    """True when ``root`` holds the generated demo corpus rather than CREMA-D's recordings."""
    return (Path(root) / DEMO_MARKER_FILE).is_file()


MISSING_ROOT_HELP = (
    "Get CREMA-D with `git lfs clone https://github.com/CheyneyComputerScience/CREMA-D.git` "
    "and set "
    "`crema_d_root` in conf/local/globals.yml (or pass --params=crema_d_root=/path/to/CREMA-D), "
    "or generate the demo corpus with `kedro run --pipelines=demo_data`."
)
