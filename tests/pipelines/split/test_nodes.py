"""Split strategies: disjoint actors, sex balance, determinism, OGM-GE random and file splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avshared import crema_d
from avshared.pipelines.split.nodes import split_clips
from avshared.splits import fold_splits

PROJECT_ROOT = Path(__file__).resolve().parents[3]

PARAMS = {
    "strategy": "actor",
    "seed": 42,
    "actor": {"fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
    "random_clip": {"test_fraction": 0.1},
    "val_fraction": 0.1,
    "actor_kfold": {"folds": 5, "val_fraction": 0.15},
    "file": {"test_list": "unused"},
}


def synthetic_manifest(
    males: int = 24, females: int = 20, clips_per_actor: int = 12
) -> pd.DataFrame:
    rows = []
    for number in range(males + females):
        actor = 1001 + number
        for index in range(clips_per_actor):
            sentence = list(crema_d.SENTENCES)[index % 12]
            emotion = crema_d.EMOTIONS[(index + number) % 6]
            rows.append(
                {
                    "clip_id": f"{actor}_{sentence}_{emotion}_XX",
                    "actor": actor,
                    "emotion": emotion,
                    "sex": "Male" if number < males else "Female",
                }
            )
    return pd.DataFrame(rows)


def real_manifest(metadata) -> pd.DataFrame:
    """The 7,442 real clips with their actors' sex, as the ingestion manifest would have them."""
    names = pd.read_csv(metadata / crema_d.SENTENCE_FILENAMES_FILE)["Filename"]
    demographics = pd.read_csv(metadata / crema_d.DEMOGRAPHICS_FILE).set_index("ActorID")
    parsed = [crema_d.parse_clip_id(name) for name in names]
    actors = [clip.actor for clip in parsed]
    return pd.DataFrame(
        {
            "clip_id": names,
            "actor": actors,
            "emotion": [clip.emotion for clip in parsed],
            "sex": demographics.loc[actors, "Sex"].to_numpy(),
        }
    )


def single_split(manifest: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The split of a single-split strategy: its one fold, 0, without the fold column."""
    split, _ = split_clips(manifest, params)
    assert set(split["fold"]) == {0}
    return split.drop(columns="fold")


def actors_of(split: pd.DataFrame, name: str) -> set[int]:
    return set(split.loc[split["split"] == name, "actor"])


def test_actor_split_keeps_every_actor_on_one_side():
    manifest = synthetic_manifest()
    split, unmatched = split_clips(manifest, PARAMS)
    assert list(split.columns) == ["fold", "clip_id", "actor", "split"]
    assert unmatched.empty
    split = split.drop(columns="fold")
    assert split["clip_id"].tolist() == manifest["clip_id"].tolist()
    assert set(split["split"]) == {"train", "val", "test"}
    train, val, test = (actors_of(split, name) for name in ("train", "val", "test"))
    assert not train & test and not train & val and not val & test
    assert len(train | val | test) == 44


def test_actor_split_follows_the_fractions_within_each_sex():
    manifest = synthetic_manifest(males=24, females=20)
    split = single_split(manifest, PARAMS).merge(manifest[["clip_id", "sex"]], on="clip_id")
    actors = split.drop_duplicates("actor")
    counts = actors.groupby(["sex", "split"]).size().unstack()
    # 24 males: 16.8 / 3.6 / 3.6 -> 17 / 4 / 3 or 17 / 3 / 4; 20 females: 14 / 3 / 3.
    assert counts.loc["Male", "train"] == 17 and counts.loc["Male", ["val", "test"]].sum() == 7
    assert counts.loc["Female"].to_dict() == {"test": 3, "train": 14, "val": 3}


def test_actor_split_is_seeded():
    manifest = synthetic_manifest()
    first = single_split(manifest, PARAMS)
    again = single_split(manifest, PARAMS)
    other = single_split(manifest, {**PARAMS, "seed": 7})
    pd.testing.assert_frame_equal(first, again)
    assert actors_of(first, "test") != actors_of(other, "test")


def test_actor_split_gives_small_splits_at_least_one_actor():
    manifest = synthetic_manifest(males=3, females=3, clips_per_actor=2)
    split = single_split(manifest, PARAMS)
    for name in ("train", "val", "test"):
        assert len(actors_of(split, name)) >= 1


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="random_clip"):
        single_split(synthetic_manifest(), {**PARAMS, "strategy": "by_sentence"})


def test_actor_split_of_the_real_actors_is_sex_balanced(real_crema_d_metadata):
    manifest = real_manifest(real_crema_d_metadata)
    split = single_split(manifest, PARAMS).merge(manifest[["clip_id", "sex"]], on="clip_id")
    actors = split.drop_duplicates("actor")
    assert len(actors) == 91
    female_share = (actors["sex"] == "Female").mean()  # 43 of 91
    for name, part in actors.groupby("split"):
        assert (part["sex"] == "Female").mean() == pytest.approx(female_share, abs=0.05), name
    assert not actors_of(split, "train") & actors_of(split, "test")
    # Each sex's actors are cut by the fractions, to the nearest whole actor.
    counts = actors.groupby(["sex", "split"]).size().unstack()
    for sex, total in (("Male", 48), ("Female", 43)):
        for name, fraction in PARAMS["actor"]["fractions"].items():
            assert abs(counts.loc[sex, name] - fraction * total) < 1, (sex, name)


def test_random_clip_split_matches_ogm_ge_sizes_and_is_stratified():
    manifest = synthetic_manifest(males=48, females=43, clips_per_actor=82).head(7442)
    split = single_split(manifest, {**PARAMS, "strategy": "random_clip"})
    sizes = split["split"].value_counts()
    assert sizes["test"] == 744
    assert sizes["val"] == round(0.1 * (7442 - 744))
    test_emotions = manifest.loc[split["split"] == "test", "emotion"].value_counts()
    expected = manifest["emotion"].value_counts() * 0.1
    assert (np.abs(test_emotions - expected) <= 1).all()
    # Clip-level: the same actors appear on both sides.
    assert actors_of(split, "train") & actors_of(split, "test")
    pd.testing.assert_frame_equal(
        split, single_split(manifest, {**PARAMS, "strategy": "random_clip"})
    )


def test_file_split_takes_the_listed_clips_as_test(tmp_path):
    manifest = synthetic_manifest()
    listed = manifest.sample(40, random_state=3)
    test_list = tmp_path / "test.csv"
    lines = [f"{c},{e}" for c, e in listed[["clip_id", "emotion"]].values]
    test_list.write_text("\n".join([*lines, "1099_DFA_ANG_XX,ANG"]) + "\n")  # one clip unknown

    params = {**PARAMS, "strategy": "file", "file": {"test_list": str(test_list)}}
    split = single_split(manifest, params)
    _, unmatched = split_clips(manifest, params)
    assert unmatched["clip_id"].tolist() == ["1099_DFA_ANG_XX"]  # listed, never silently dropped
    assert unmatched["listed_emotion"].tolist() == ["ANG"]
    assert set(split.loc[split["split"] == "test", "clip_id"]) == set(listed["clip_id"])
    assert (split["split"] == "val").sum() == round(0.1 * (len(manifest) - 40))
    assert len(split) == len(manifest)


def test_file_split_without_its_list_says_how_to_fix_it(tmp_path):
    params = {**PARAMS, "strategy": "file", "file": {"test_list": str(tmp_path / "none.csv")}}
    with pytest.raises(FileNotFoundError, match=r"split\.file\.test_list"):
        single_split(synthetic_manifest(), params)


def test_file_split_with_ogm_ge_test_list(real_crema_d_metadata):
    manifest = real_manifest(real_crema_d_metadata)
    params = {**PARAMS, "strategy": "file", "file": {"test_list": "ogm_ge/test"}}
    split = single_split(manifest, params)
    test = manifest[split["split"] == "test"]
    assert len(test) == 744
    assert test["emotion"].value_counts().to_dict() == {
        "ANG": 105,
        "DIS": 129,
        "FEA": 133,
        "HAP": 123,
        "NEU": 114,
        "SAD": 140,
    }


def test_file_split_lists_every_unknown_clip_in_the_log(tmp_path, caplog):
    test_list = tmp_path / "test.csv"
    test_list.write_text("1099_DFA_ANG_XX,ANG\n1098_IEO_SAD_HI,SAD\n")
    params = {**PARAMS, "strategy": "file", "file": {"test_list": str(test_list)}}
    with caplog.at_level("WARNING"):
        split_clips(synthetic_manifest(), params)
    assert "1099_DFA_ANG_XX" in caplog.text and "1098_IEO_SAD_HI" in caplog.text


def test_the_default_file_split_is_the_shipped_ogm_ge_list(real_crema_d_metadata):
    """conf/base names the list shipped in the package, so a fresh clone has it, and no path."""
    conf = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_split.yml").read_text())["split"]
    params = {**conf, "strategy": "file"}
    manifest = real_manifest(real_crema_d_metadata)
    split, unmatched = split_clips(manifest, params)
    assert (split["split"] == "test").sum() == 744 and unmatched.empty
    assert (split["split"] == "train").sum() + (split["split"] == "val").sum() == 6698


def kfold(manifest: pd.DataFrame, folds: int = 5, seed: int = 42) -> pd.DataFrame:
    params = {**PARAMS, "strategy": "actor_kfold", "seed": seed}
    params["actor_kfold"] = {"folds": folds, "val_fraction": 0.15}
    split, _ = split_clips(manifest, params)
    return split


def test_actor_kfold_is_disjoint_complete_and_tests_every_actor_once():
    manifest = synthetic_manifest(males=24, females=20)
    split = kfold(manifest)
    assert sorted(split["fold"].unique()) == [0, 1, 2, 3, 4]
    tested = split.loc[split["split"] == "test"]
    # Complete: every clip, hence every actor, is tested exactly once over the folds.
    assert tested["clip_id"].value_counts().eq(1).all()
    assert set(tested["clip_id"]) == set(manifest["clip_id"])
    for fold, rows in fold_splits(split).items():
        assert len(rows) == len(manifest), fold
        train, val, test = (actors_of(rows, name) for name in ("train", "val", "test"))
        assert not train & test and not train & val and not val & test, fold
        assert len(train | val | test) == 44
        assert val, f"fold {fold} has no validation actors"


def test_actor_kfold_is_balanced_by_sex():
    manifest = synthetic_manifest(males=24, females=20)
    split = kfold(manifest).merge(manifest[["clip_id", "sex"]], on="clip_id")
    test_actors = split.loc[split["split"] == "test"].drop_duplicates("actor")
    per_fold = test_actors.groupby(["fold", "sex"]).size().unstack()
    assert sorted(per_fold["Male"]) == [4, 5, 5, 5, 5]
    assert sorted(per_fold["Female"]) == [4, 4, 4, 4, 4]
    assert per_fold.sum(axis=1).max() - per_fold.sum(axis=1).min() <= 1
    # Validation actors come from the fold's training actors, of both sexes.
    val_actors = split.loc[split["split"] == "val"].drop_duplicates(["fold", "actor"])
    assert (val_actors.groupby("fold")["sex"].nunique() == 2).all()


def test_actor_kfold_is_stable_for_a_seed():
    manifest = synthetic_manifest()
    pd.testing.assert_frame_equal(kfold(manifest), kfold(manifest))
    assert not kfold(manifest).equals(kfold(manifest, seed=7))


def test_more_folds_than_actors_of_a_sex_is_a_clear_error():
    manifest = synthetic_manifest(males=8, females=3)
    with pytest.raises(ValueError, match=r"folds is 5 but .*'Female': 3.*lower split\.actor_kfold"):
        kfold(manifest)


def test_actor_kfold_of_the_real_actors(real_crema_d_metadata):
    manifest = real_manifest(real_crema_d_metadata)
    split = kfold(manifest)
    tested = split.loc[split["split"] == "test"]
    assert tested["clip_id"].nunique() == len(tested) == 7442
    actors_per_fold = tested.groupby("fold")["actor"].nunique()
    assert actors_per_fold.sum() == 91 and actors_per_fold.max() - actors_per_fold.min() <= 1
