"""Split strategies: disjoint actors, sex balance, determinism, OGM-GE random and file splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avshared import crema_d
from avshared.pipelines.split.nodes import split_clips

PARAMS = {
    "strategy": "actor",
    "seed": 42,
    "actor": {"fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
    "random_clip": {"test_fraction": 0.1},
    "val_fraction": 0.1,
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


def actors_of(split: pd.DataFrame, name: str) -> set[int]:
    return set(split.loc[split["split"] == name, "actor"])


def test_actor_split_keeps_every_actor_on_one_side():
    manifest = synthetic_manifest()
    split = split_clips(manifest, PARAMS)
    assert list(split.columns) == ["clip_id", "actor", "split"]
    assert split["clip_id"].tolist() == manifest["clip_id"].tolist()
    assert set(split["split"]) == {"train", "val", "test"}
    train, val, test = (actors_of(split, name) for name in ("train", "val", "test"))
    assert not train & test and not train & val and not val & test
    assert len(train | val | test) == 44


def test_actor_split_follows_the_fractions_within_each_sex():
    manifest = synthetic_manifest(males=24, females=20)
    split = split_clips(manifest, PARAMS).merge(manifest[["clip_id", "sex"]], on="clip_id")
    actors = split.drop_duplicates("actor")
    counts = actors.groupby(["sex", "split"]).size().unstack()
    # 24 males: 16.8 / 3.6 / 3.6 -> 17 / 4 / 3 or 17 / 3 / 4; 20 females: 14 / 3 / 3.
    assert counts.loc["Male", "train"] == 17 and counts.loc["Male", ["val", "test"]].sum() == 7
    assert counts.loc["Female"].to_dict() == {"test": 3, "train": 14, "val": 3}


def test_actor_split_is_seeded():
    manifest = synthetic_manifest()
    first = split_clips(manifest, PARAMS)
    again = split_clips(manifest, PARAMS)
    other = split_clips(manifest, {**PARAMS, "seed": 7})
    pd.testing.assert_frame_equal(first, again)
    assert actors_of(first, "test") != actors_of(other, "test")


def test_actor_split_gives_small_splits_at_least_one_actor():
    manifest = synthetic_manifest(males=3, females=3, clips_per_actor=2)
    split = split_clips(manifest, PARAMS)
    for name in ("train", "val", "test"):
        assert len(actors_of(split, name)) >= 1


@pytest.mark.parametrize(
    "fractions", [{"train": 0.8, "val": 0.1, "test": 0.2}, {"train": 0.9, "test": 0.1}]
)
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_clips(synthetic_manifest(), {**PARAMS, "actor": {"fractions": fractions}})


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="random_clip"):
        split_clips(synthetic_manifest(), {**PARAMS, "strategy": "by_sentence"})


def test_actor_split_of_the_real_actors_is_sex_balanced(real_crema_d_metadata):
    manifest = real_manifest(real_crema_d_metadata)
    split = split_clips(manifest, PARAMS).merge(manifest[["clip_id", "sex"]], on="clip_id")
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
    split = split_clips(manifest, {**PARAMS, "strategy": "random_clip"})
    sizes = split["split"].value_counts()
    assert sizes["test"] == 744
    assert sizes["val"] == round(0.1 * (7442 - 744))
    test_emotions = manifest.loc[split["split"] == "test", "emotion"].value_counts()
    expected = manifest["emotion"].value_counts() * 0.1
    assert (np.abs(test_emotions - expected) <= 1).all()
    # Clip-level: the same actors appear on both sides.
    assert actors_of(split, "train") & actors_of(split, "test")
    pd.testing.assert_frame_equal(
        split, split_clips(manifest, {**PARAMS, "strategy": "random_clip"})
    )


def test_file_split_takes_the_listed_clips_as_test(tmp_path):
    manifest = synthetic_manifest()
    listed = manifest.sample(40, random_state=3)
    test_list = tmp_path / "test.csv"
    lines = [f"{c},{e}" for c, e in listed[["clip_id", "emotion"]].values]
    test_list.write_text("\n".join([*lines, "1099_DFA_ANG_XX,ANG"]) + "\n")  # one clip unknown

    params = {**PARAMS, "strategy": "file", "file": {"test_list": str(test_list)}}
    split = split_clips(manifest, params)
    assert set(split.loc[split["split"] == "test", "clip_id"]) == set(listed["clip_id"])
    assert (split["split"] == "val").sum() == round(0.1 * (len(manifest) - 40))
    assert len(split) == len(manifest)


def test_file_split_without_its_list_says_how_to_fix_it(tmp_path):
    params = {**PARAMS, "strategy": "file", "file": {"test_list": str(tmp_path / "none.csv")}}
    with pytest.raises(FileNotFoundError, match=r"split\.file\.test_list"):
        split_clips(synthetic_manifest(), params)


def test_file_split_with_ogm_ge_test_list(real_crema_d_metadata):
    manifest = real_manifest(real_crema_d_metadata)
    test_list = real_crema_d_metadata / "splits-ogm-ge" / "test.csv"
    params = {**PARAMS, "strategy": "file", "file": {"test_list": str(test_list)}}
    split = split_clips(manifest, params)
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
