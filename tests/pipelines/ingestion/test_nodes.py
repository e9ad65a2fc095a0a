"""Ingestion nodes on the defect-laden fixture root, on hand-made probes, on real metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from avshared import crema_d
from avshared.pipelines.ingestion.nodes import (
    MANIFEST_DTYPES,
    PROBE_DTYPES,
    REJECT_DTYPES,
    check_root,
    list_clips,
    probe_clips,
    sort_rejects_by_reason,
    validate_clips,
)


@pytest.fixture(scope="module")
def ingested(fixture_corpus, ingestion_params):
    """list -> probe -> validate on the fixture root, once for the module."""
    root = check_root(str(fixture_corpus.root))
    clips = list_clips(pd.read_csv(Path(root) / crema_d.SENTENCE_FILENAMES_FILE), root)
    probed = probe_clips(clips, ingestion_params["workers"])
    demographics = pd.read_csv(Path(root) / crema_d.DEMOGRAPHICS_FILE)
    manifest, rejects = validate_clips(probed, demographics, ingestion_params)
    return clips, probed, manifest, rejects


def probed_row(clip_id: str, **changes) -> dict:
    """A probe result for a clip with nothing wrong, as probe_clips writes it, with ``changes``."""
    row = {
        "clip_id": clip_id,
        "listed": True,
        "audio_path": f"/corpus/AudioWAV/{clip_id}.wav",
        "video_path": f"/corpus/VideoFlash/{clip_id}.flv",
        "audio_present": True,
        "video_present": True,
        "audio_status": "ok",
        "audio_error": "",
        "sample_rate": 16_000,
        "channels": 1,
        "audio_frames": 40_000,
        "audio_duration_s": 2.5,
        "video_status": "ok",
        "video_error": "",
        "frame_count": 75,
        "fps": 30.0,
        "width": 480,
        "height": 360,
        "video_duration_s": 2.5,
    }
    return {**row, **changes}


def probed_frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows)).astype(PROBE_DTYPES)


DEMOGRAPHICS = pd.DataFrame(
    {
        "ActorID": [1001, 1002],
        "Age": [51, 21],
        "Sex": ["Male", "Female"],
        "Race": ["Caucasian", "Asian"],
        "Ethnicity": ["Not Hispanic", "Hispanic"],
    }
)


def test_manifest_has_exactly_the_agreed_columns_and_dtypes(ingested):
    _, _, manifest, rejects = ingested
    assert list(manifest.columns) == list(MANIFEST_DTYPES)
    assert {col: str(dtype) for col, dtype in manifest.dtypes.items()} == MANIFEST_DTYPES
    assert list(rejects.columns) == list(REJECT_DTYPES)
    assert {col: str(dtype) for col, dtype in rejects.dtypes.items()} == REJECT_DTYPES
    assert manifest["clip_id"].is_monotonic_increasing and manifest["clip_id"].is_unique
    assert rejects["clip_id"].is_monotonic_increasing


def test_manifest_rows_describe_their_clips(ingested, fixture_corpus):
    _, _, manifest, _ = ingested
    clip = manifest.set_index("clip_id").loc["1001_IEO_HAP_LO"]
    assert (clip["actor"], clip["sentence"], clip["emotion"], clip["level"]) == (
        1001,
        "IEO",
        "HAP",
        "LO",
    )
    assert crema_d.EMOTIONS[clip["label"]] == "HAP"
    assert (clip["sex"], clip["age"], clip["race"]) == ("Male", 51, "Caucasian")
    assert clip["frame_count"] == 24 and clip["fps"] == pytest.approx(30.0)
    assert (clip["width"], clip["height"]) == (480, 360)
    assert clip["video_duration_s"] == pytest.approx(0.8)
    for column in ("audio_path", "video_path"):
        paths = manifest[column].map(Path)
        assert all(path.is_absolute() and path.is_file() for path in paths)
    assert set(manifest["audio_path"].map(lambda p: Path(p).stem)) == fixture_corpus.usable


def test_stereo_44k_audio_is_accepted_and_recorded(ingested):
    _, _, manifest, _ = ingested
    stereo = manifest.set_index("clip_id").loc["1001_IEO_HAP_LO"]
    assert (stereo["sample_rate"], stereo["channels"]) == (44_100, 2)
    assert stereo["audio_duration_s"] == pytest.approx(0.8)


def test_every_defect_is_rejected_with_its_reason(ingested, fixture_corpus):
    _, _, manifest, rejects = ingested
    found = {row.clip_id: (row.stage, row.reason) for row in rejects.itertuples()}
    assert found == fixture_corpus.rejected
    assert set(manifest["clip_id"]) == fixture_corpus.usable
    assert (rejects["detail"].str.len() > 0).all()


def test_no_clip_is_dropped_silently(ingested, fixture_corpus):
    _, _, manifest, rejects = ingested
    root = fixture_corpus.root
    on_disk = {p.stem for p in (root / crema_d.AUDIO_DIR).glob("*.wav")}
    on_disk |= {p.stem for p in (root / crema_d.VIDEO_DIR).glob("*.flv")}
    outcome = pd.concat([manifest["clip_id"], rejects["clip_id"]])
    assert outcome.is_unique
    assert set(outcome) == set(fixture_corpus.listed) | on_disk


def test_the_real_quirks_are_explained(ingested):
    _, _, _, rejects = ingested
    detail = rejects.set_index("clip_id")["detail"]
    assert "no samples" in detail["1076_MTI_SAD_XX"]
    assert "no duration" in detail["1064_TIE_SAD_XX"]
    assert "60.00 s" in detail["1064_IEO_DIS_MD"]
    assert "git lfs pull" in detail["1002_IOM_ANG_XX"]
    # Both files absent: the first problem is the reason, the detail names every problem.
    assert "missing_video" in detail["1002_WSI_ANG_XX"]


def test_list_clips_unites_the_list_and_the_files(ingested, fixture_corpus):
    clips, _, _, _ = ingested
    clips = clips.set_index("clip_id")
    assert not clips.loc["1002_DFA_SAD_XX", "listed"]  # on disk only
    assert clips.loc["1002_WSI_ANG_XX", "listed"]  # listed only
    assert not clips.loc["1002_WSI_ANG_XX", ["audio_present", "video_present"]].any()
    assert clips.loc["1002_DFA_HAP_XX", "audio_present"]
    assert not clips.loc["1002_DFA_HAP_XX", "video_present"]
    assert set(clips.index[clips["listed"]]) == fixture_corpus.listed


def test_list_clips_needs_the_filename_column(tmp_path):
    with pytest.raises(ValueError, match="no 'Filename' column"):
        list_clips(pd.DataFrame({"name": ["1001_DFA_ANG_XX"]}), str(tmp_path))


def test_probing_gives_the_same_facts_with_any_pool_size(ingested):
    clips, probed, _, _ = ingested
    pd.testing.assert_frame_equal(probe_clips(clips, 1), probed)
    pd.testing.assert_frame_equal(probe_clips(clips, 7), probed)


def test_probing_needs_a_worker(ingested):
    clips, _, _, _ = ingested
    with pytest.raises(ValueError, match=r"ingestion\.workers"):
        probe_clips(clips, 0)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("metadata_only", "no media"),
        ("media_only", "lacks SentenceFilenames.csv and VideoDemographics.csv"),
    ],
)
def test_an_unusable_root_stops_with_the_way_out(tmp_path, fixture_corpus, layout, message):
    root = tmp_path / "crema_d"
    if layout != "missing":
        root.mkdir()
    if layout == "metadata_only":
        for name in (crema_d.SENTENCE_FILENAMES_FILE, crema_d.DEMOGRAPHICS_FILE):
            shutil.copy(fixture_corpus.root / name, root / name)
        (root / crema_d.AUDIO_DIR).mkdir()  # an empty media folder is no media
    if layout == "media_only":
        shutil.copytree(fixture_corpus.root / crema_d.AUDIO_DIR, root / crema_d.AUDIO_DIR)
    with pytest.raises(FileNotFoundError, match=message) as error:
        check_root(str(root))
    assert crema_d.MISSING_ROOT_HELP in str(error.value)


def test_check_root_returns_an_absolute_path(fixture_corpus, monkeypatch):
    monkeypatch.chdir(fixture_corpus.root.parent)
    assert check_root(fixture_corpus.root.name) == str(fixture_corpus.root.resolve())


def test_durations_on_the_limits_are_accepted(ingestion_params):
    low, high = ingestion_params["min_duration_s"], ingestion_params["max_duration_s"]
    probed = probed_frame(
        probed_row("1001_DFA_ANG_XX", audio_duration_s=low, video_duration_s=low),
        probed_row("1001_DFA_SAD_XX", audio_duration_s=high, video_duration_s=high),
        probed_row("1001_DFA_HAP_XX", audio_duration_s=high + 0.01, video_duration_s=high),
    )
    manifest, rejects = validate_clips(probed, DEMOGRAPHICS, ingestion_params)
    assert list(manifest["clip_id"]) == ["1001_DFA_ANG_XX", "1001_DFA_SAD_XX"]
    assert rejects[["clip_id", "reason"]].values.tolist() == [["1001_DFA_HAP_XX", "too_long"]]


def test_the_sync_check_can_be_switched_off(ingestion_params):
    probed = probed_frame(
        probed_row("1001_DFA_ANG_XX", video_duration_s=0.9), probed_row("1001_DFA_SAD_XX")
    )
    _, rejects = validate_clips(probed, DEMOGRAPHICS, ingestion_params)
    assert rejects[["clip_id", "reason"]].values.tolist() == [
        ["1001_DFA_ANG_XX", "av_duration_mismatch"]
    ]
    manifest, rejects = validate_clips(
        probed, DEMOGRAPHICS, {**ingestion_params, "max_av_duration_gap_s": None}
    )
    assert list(manifest["clip_id"]) == ["1001_DFA_ANG_XX", "1001_DFA_SAD_XX"]
    assert rejects.empty


def test_a_rejected_clip_names_every_problem(ingestion_params):
    probed = probed_frame(
        probed_row("1001_DFA_ANG_XX"),
        probed_row(
            "1003_DFA_ANG_XX", audio_status="missing", audio_error="", fps=0.0, frame_count=5
        ),
    )
    _, rejects = validate_clips(probed, DEMOGRAPHICS, ingestion_params)
    reject = rejects.iloc[0]
    assert (reject["stage"], reject["reason"]) == ("demographics", "unknown_actor")
    assert "also missing_audio" in reject["detail"] and "also bad_fps" in reject["detail"]


def test_no_usable_clip_stops_the_run(ingestion_params):
    probed = probed_frame(probed_row("1001_DFA_ANG_XX", audio_frames=0, audio_duration_s=0.0))
    with pytest.raises(ValueError, match="None of the 1 clips is usable") as error:
        validate_clips(probed, DEMOGRAPHICS, ingestion_params)
    assert "empty_audio 1" in str(error.value)
    assert crema_d.MISSING_ROOT_HELP in str(error.value)


@pytest.mark.parametrize(
    ("demographics", "message"),
    [
        (DEMOGRAPHICS.drop(columns="Sex"), r"lacks the columns \['Sex'\]"),
        (pd.concat([DEMOGRAPHICS, DEMOGRAPHICS.head(1)]), r"\[1001\] more than once"),
        (DEMOGRAPHICS.assign(Age=[51.0, None]), r"empty cells for the actors \[1002\]"),
    ],
)
def test_broken_demographics_are_explained(ingestion_params, demographics, message):
    with pytest.raises(ValueError, match=message):
        validate_clips(probed_frame(probed_row("1001_DFA_ANG_XX")), demographics, ingestion_params)


def test_bad_limits_are_explained(ingestion_params):
    probed = probed_frame(probed_row("1001_DFA_ANG_XX"))
    with pytest.raises(ValueError, match="lack"):
        validate_clips(probed, DEMOGRAPHICS, {"workers": 2})
    with pytest.raises(ValueError, match="below max_duration_s"):
        validate_clips(probed, DEMOGRAPHICS, {**ingestion_params, "min_duration_s": 20.0})


def test_the_report_groups_rejects_by_stage_and_reason(ingested):
    _, _, _, rejects = ingested
    report = sort_rejects_by_reason(rejects)
    keys = list(zip(report["stage"], report["reason"], report["clip_id"], strict=True))
    assert keys == sorted(keys)
    assert set(report["clip_id"]) == set(rejects["clip_id"])


def test_real_metadata_names_parse_and_actors_are_known(real_crema_d_metadata, ingestion_params):
    """Every clip of the real SentenceFilenames.csv reaches the manifest if its media are sound."""
    names = pd.read_csv(real_crema_d_metadata / crema_d.SENTENCE_FILENAMES_FILE)["Filename"]
    demographics = pd.read_csv(real_crema_d_metadata / crema_d.DEMOGRAPHICS_FILE)
    probed = probed_frame(*(probed_row(name) for name in names))
    manifest, rejects = validate_clips(probed, demographics, ingestion_params)
    assert rejects.empty
    assert len(manifest) == 7_442
    assert manifest["actor"].nunique() == 91
    assert set(manifest["sex"]) == {"Male", "Female"}
    assert set(manifest["emotion"]) == set(crema_d.EMOTIONS)


def test_real_metadata_without_media_is_explained(real_crema_d_metadata):
    with pytest.raises(FileNotFoundError, match="no media") as error:
        check_root(str(real_crema_d_metadata))
    assert crema_d.MISSING_ROOT_HELP in str(error.value)
