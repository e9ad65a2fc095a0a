"""Training on several processes with Lightning's DDP (gloo on the CPU, local processes, loopback):
spawned inside the node, and as two "nodes" started the way torchrun starts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from avshared.crema_d import PROBABILITY_COLUMNS
from avshared.features.audio import apply_spectrogram_stats
from avshared.hooks.tracking import PhaseRunsHook
from avshared.models import build_model, restore_model
from avshared.pipelines.training import PHASE_MODALITIES, create_phase_pipeline
from avshared.training.cells import Cell, cell_config, plan_cells
from avshared.training.folds import (
    build_fold_targets,
    evaluate_cells,
    gather_cells,
    load_fold_model,
    summary_of_cell,
    train_cells,
)
from avshared.training.phase import (
    build_targets,
    evaluate_model,
    load_trained_model,
    phase_config,
    sized_model_config,
    train_model,
)

PHASE = "audio"


@pytest.fixture
def audio_config(tiny_defaults, phase_overrides, training_parameters, tmp_path):
    """The audio phase's config with the tiny defaults and these trainer settings."""

    def make(**trainer):
        defaults = {**tiny_defaults, "trainer": {**tiny_defaults["trainer"], **trainer}}
        return phase_config(
            defaults,
            phase_overrides[PHASE],
            str(tmp_path),
            phase=PHASE,
            modalities=PHASE_MODALITIES[PHASE],
            seeds=training_parameters["seeds"],
        )

    return make


def _one_cell(config):
    """The configuration ``train_model`` trains the phase's one cell with (fold 0, seed 0)."""
    return cell_config(config, Cell(fold=0, seed=0))


def _targets(corpus, config):
    return build_targets(corpus.clip_manifest, corpus.crowd_labels, corpus.split, config)


def _train(corpus, config, targets=None, **kwargs):
    targets, summary = _targets(corpus, config) if targets is None else (targets, {})
    return train_model(
        targets=targets,
        target_summary=summary,
        config=_one_cell(config),
        log_mel_spectrograms=corpus.log_mel_spectrograms,
        spectrogram_stats=corpus.spectrogram_stats,
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_two_process_run_logs_one_mlflow_run_and_saves_weights_that_load(
    corpus, audio_config, tmp_path
):
    config = audio_config(devices=2)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.set_experiment("ddp")
    hook, catalog = PhaseRunsHook(), DataCatalog()
    pipeline = create_phase_pipeline(PHASE)
    try:
        with mlflow.start_run(run_name="kedro run") as parent:
            hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
            run = catalog.load(f"{PHASE}.mlflow_run")
            model, history, summary = _train(corpus, config, mlflow_run=run)
            hook.after_pipeline_run()
        client = mlflow.MlflowClient()
        runs = client.search_runs([experiment.experiment_id])
    finally:
        mlflow.set_tracking_uri("")
    children = [r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent.info.run_id]
    assert len(runs) == 2, [r.info.run_name for r in runs]  # the parent and one phase run
    assert len(children) == 1
    child = children[0]
    assert (child.info.run_name, child.info.status) == (PHASE, "FINISHED")
    assert summary["mlflow_run_id"] == child.info.run_id
    assert child.data.tags["phase"] == PHASE
    assert child.data.params["trainer/devices"] == "2"
    val_accuracy = client.get_metric_history(child.info.run_id, "val_accuracy")
    assert [m.step for m in val_accuracy] == list(range(config["trainer"]["max_epochs"]))
    assert list(history["val_accuracy"]) == pytest.approx([m.value for m in val_accuracy])
    assert summary["devices"]["devices"] == 2
    assert history["train_samples"].iloc[0] >= (corpus.split["split"] == "train").sum()

    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    reloaded = load_trained_model(
        torch.load(weights, weights_only=True), json.loads(json.dumps(summary))
    )
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_process_folds_log_once_each_into_runs_nested_in_the_phase_run(
    corpus, audio_config, mlflow_phase_run
):
    """The fold loop under ddp_spawn: each fold's spawned processes log one epoch series (rank 0)
    into the fold's run, and the weights of each fold reload."""
    config = audio_config(devices=2, max_epochs=1)
    swap = {"test": "val", "val": "test", "train": "train"}
    split = pd.concat(
        [
            corpus.split.assign(fold=0),
            corpus.split.assign(split=corpus.split["split"].map(swap), fold=1),
        ],
        ignore_index=True,
    )
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, split, config
    )
    client, phase_run = mlflow_phase_run
    plan = plan_cells(
        targets,
        config,
        only_fold=None,
        only_seed=None,
        feature_stores={"audio": corpus.log_mel_spectrograms},
    )
    models, histories, summaries = train_cells(
        targets=targets,
        target_summary=target_summary,
        config=config,
        plan=plan,
        mlflow_run=phase_run,
        log_mel_spectrograms=corpus.log_mel_spectrograms,
        spectrogram_stats=corpus.spectrogram_stats,
    )
    experiment = client.get_run(phase_run["run_id"]).info.experiment_id
    folds = {
        run.data.tags["fold"]: run
        for run in client.search_runs([experiment])
        if run.info.run_id != phase_run["run_id"]
    }
    assert sorted(folds) == ["0", "1"]
    grid = {"per_cell": list(summaries.values())}
    weights = {
        f"{key}.{name}": tensor
        for key, model in models.items()
        for name, tensor in model.state_dict().items()
    }
    for fold, run in folds.items():
        assert run.data.tags[MLFLOW_PARENT_RUN_ID] == phase_run["run_id"]
        assert run.data.tags["seed"] == "0"
        assert run.info.status == "FINISHED"
        assert run.data.params["trainer/devices"] == "2"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0]
        assert summary_of_cell(grid, int(fold), 0)["mlflow_run_id"] == run.info.run_id
        reloaded = load_fold_model(weights, json.loads(json.dumps(grid)), int(fold))
        for name, tensor in models[f"fold_{fold}.seed_0"].state_dict().items():
            assert torch.equal(tensor, reloaded.state_dict()[name]), name
    assert sorted(pd.concat(histories.values())["fold"].unique()) == [0, 1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_ddp_step_on_two_processes_equals_one_step_on_one(corpus, audio_config):
    """The same global batch of 8, dropout off: the gradient all-reduce must average exactly."""
    single = audio_config(max_epochs=1, min_epochs=1)
    single["model"]["dropout"] = 0.0
    single["data"]["batch_size"] = 8
    targets, _ = _targets(corpus, single)
    train = targets.loc[targets["split"] == "train"].iloc[:8]
    one_step = pd.concat([train, targets.loc[targets["split"] != "train"]], ignore_index=True)
    two = {**single, "trainer": {**single["trainer"], "devices": 2}}
    initial, *_ = _train(
        corpus, {**single, "optimiser": {**single["optimiser"], "learning_rate": 0}}, one_step
    )
    alone, *_ = _train(corpus, single, one_step)
    together, *_ = _train(corpus, two, one_step)
    moved = max((alone.state_dict()[n] - t).abs().max() for n, t in initial.state_dict().items())
    assert moved > 1e-3, "the step must change the weights for the comparison to mean anything"
    for name, tensor in alone.state_dict().items():
        expected, got = tensor, together.state_dict()[name]
        if name.endswith("self_attn.in_proj_bias"):
            # The key bias's gradient is exactly zero (softmax ignores a shift shared by all
            # keys): Adam's first step turns its rounding noise into +-lr. Queries and values only.
            dim = single["model"]["dim"]
            keep = torch.ones_like(tensor, dtype=torch.bool)
            keep[dim : 2 * dim] = False
            expected, got = expected[keep], got[keep]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


NODE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import pandas as pd, torch
    from avshared.features.store import FeatureStore
    from avshared.training.phase import train_model

    folder = Path(sys.argv[1])
    spec = json.loads((folder / "spec.json").read_text())
    model, history, summary = train_model(
        targets=pd.read_parquet(folder / "targets.parquet"),
        target_summary={},
        config=spec["config"],
        spectrogram_stats=spec["stats"],
        **{name: FeatureStore(path) for name, path in spec["stores"].items()},
    )
    rank = sys.argv[2]
    torch.save(model.state_dict(), folder / f"weights-{rank}.pt")
    history.to_parquet(folder / f"history-{rank}.parquet")
    """
)


def _train_like_torchrun(corpus, config, tmp_path, cli) -> tuple[list[dict], list[pd.DataFrame]]:
    """Train ``config`` on two one-process "nodes" started as torchrun starts them; returns each
    rank's weights and history."""
    targets, _ = _targets(corpus, config)
    targets.to_parquet(tmp_path / "targets.parquet")
    stores = {"audio": "log_mel_spectrograms", "video": "face_frames"}
    spec = {
        "config": config,
        "stores": {
            stores[m]: str(getattr(corpus, stores[m]).directory) for m in config["modalities"]
        },
        "stats": corpus.spectrogram_stats,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    _launch_like_torchrun(NODE_SCRIPT, tmp_path, cli.free_port())
    weights = [torch.load(tmp_path / f"weights-{r}.pt", weights_only=True) for r in (0, 1)]
    histories = [pd.read_parquet(tmp_path / f"history-{r}.parquet") for r in (0, 1)]
    return weights, histories


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_nodes_started_like_torchrun_train_one_model(corpus, audio_config, tmp_path, cli):
    config = _one_cell(audio_config(num_nodes=2, devices=1))
    weights, (history, other_history) = _train_like_torchrun(corpus, config, tmp_path, cli)
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, atol=0, rtol=0)
    assert list(history["epoch"]) == list(range(config["trainer"]["max_epochs"]))
    pd.testing.assert_frame_equal(
        other_history.drop(columns="train_seconds"), history.drop(columns="train_seconds")
    )
    assert not (Path(config["checkpoint_dir"]) / PHASE).exists()


@pytest.fixture
def two_node_config(tiny_defaults, phase_overrides, training_parameters, tmp_path):
    """A phase's config for two one-process nodes, two epochs."""

    def make(phase):
        trainer = {**tiny_defaults["trainer"], "num_nodes": 2, "devices": 1, "max_epochs": 2}
        return phase_config(
            {**tiny_defaults, "trainer": trainer},
            phase_overrides[phase],
            str(tmp_path),
            phase=phase,
            modalities=PHASE_MODALITIES[phase],
            seeds=training_parameters["seeds"],
        )

    return make


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("phase", ["bimodal_alternating", "baseline_ogm_ge"])
def test_two_processes_keep_one_model_under_the_balancing_strategies(
    corpus, two_node_config, tmp_path, cli, phase
):
    """alternating leaves one sense's parameters without a gradient in two steps of three (DDP
    must look for them); OGM-GE's coefficients and noise must be the same in every process."""
    config = _one_cell(two_node_config(phase))
    weights, (history, other_history) = _train_like_torchrun(corpus, config, tmp_path, cli)
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, atol=0, rtol=0)
    assert history["val_accuracy_video"].notna().all()
    pd.testing.assert_frame_equal(
        other_history.drop(columns="train_seconds"), history.drop(columns="train_seconds")
    )


def test_on_a_rank_other_than_zero_outputs_stay_in_memory_and_nothing_is_logged(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("RANK", "1")
    catalog = DataCatalog()
    pipeline = create_phase_pipeline(PHASE)
    PhaseRunsHook().before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    assert catalog.load(f"{PHASE}.mlflow_run") is None
    for name in pipeline.all_outputs():
        assert isinstance(catalog.get(name), MemoryDataset), name


def test_on_a_rank_other_than_zero_the_cells_are_neither_evaluated_nor_gathered(
    monkeypatch, audio_config
):
    """Every rank runs the phase's nodes; rank 0 evaluates and gathers the stored cells, the others
    return placeholders built from the cell they trained (kept in memory, never saved)."""
    monkeypatch.setenv("RANK", "1")
    config = audio_config()
    summary = {
        "config": config,
        "param_count": 1,
        "train_samples_per_s": 1.0,
        "epochs": 1,
        "best_epoch": 0,
        "mlflow_run_id": None,
    }
    nothing = {}  # no partition is read on these ranks
    assert evaluate_cells(
        cell_weights=nothing,
        cell_training_summaries=nothing,
        targets=pd.DataFrame(),
        plan=None,
    ) == ({}, {})
    model, history, gathered, predictions, metrics = gather_cells(
        plan=None,
        config=config,
        target_summary={},
        cell_weights=nothing,
        cell_training_summaries={"fold_0.seed_0": summary},  # in memory, as train_cells left it
        cell_histories=nothing,
        cell_predictions=nothing,
        cell_metrics=nothing,
    )
    assert gathered is summary and predictions.empty and history.empty
    assert not list(model.children())
    assert metrics["evaluated_on_global_rank"] == 0 and metrics["test_clips"] == 0


def _launch_like_torchrun(script: str, folder: Path, port: int) -> list[str]:
    """Two processes with the environment torchrun --nnodes=2 --nproc-per-node=1 sets; their
    logs, after both ended successfully."""
    processes = []
    for node in (0, 1):
        env = os.environ | {
            "RANK": str(node),
            "GROUP_RANK": str(node),
            "NODE_RANK": str(node),
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "2",
            "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "TORCHELASTIC_RUN_ID": "two-process-test",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(folder), str(node)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [process.communicate(timeout=540)[0] for process in processes]
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log[-4000:]
    return logs


EVALUATE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import lightning as L, pandas as pd, torch
    from avshared.features.store import FeatureStore
    from avshared.training.cells import plan_cells
    from avshared.training.folds import evaluate_cells

    folder, rank = Path(sys.argv[1]), sys.argv[2]
    spec = json.loads((folder / "spec.json").read_text())
    if rank != "0":
        def refuse(*args, **kwargs):
            raise AssertionError("a rank other than 0 built an evaluation trainer")
        L.Trainer.__init__ = refuse
    targets, store = pd.read_parquet(folder / "targets.parquet"), FeatureStore(spec["store"])
    plan = plan_cells(
        targets, spec["summary"]["config"], only_fold=None, only_seed=None,
        feature_stores={"audio": store},
    )
    cell = "fold_0.seed_0"
    summary = spec["summary"] | {"fingerprint": plan.fingerprints[cell]}
    weights = torch.load(folder / "weights.pt", weights_only=True)
    predictions, metrics = evaluate_cells(
        cell_weights={cell: lambda: weights},
        cell_training_summaries={cell: lambda: summary},
        targets=targets,
        plan=plan,
        log_mel_spectrograms=store,
    )
    for key, table in predictions.items():
        table.to_parquet(folder / f"predictions-{rank}-{key}.parquet")
    (folder / f"metrics-{rank}.json").write_text(json.dumps(metrics, default=str))
    """
)


@pytest.mark.timeout(600)
def test_under_torchrun_only_global_rank_zero_evaluates(corpus, audio_config, tmp_path, cli):
    config = audio_config(num_nodes=2, devices=1)
    targets, _ = build_fold_targets(corpus.clip_manifest, corpus.crowd_labels, corpus.split, config)
    stores = {"audio": corpus.log_mel_spectrograms}
    model_config = sized_model_config(config, stores)
    model = build_model("shared", ["audio"], model_config)
    summary = {
        "phase": PHASE,
        "config": config,
        "model_kind": "shared",
        "modalities": ["audio"],
        "model_config": model_config.to_dict(),
        "spectrogram_stats": corpus.spectrogram_stats,
        "param_count": 1,
        "train_samples_per_s": 1.0,
        "epochs": 1,
        "best_epoch": 0,
        "mlflow_run_id": None,
        # The cell's stamps (the script adds its fingerprint).
        **{"fold": 0, "seed": 0, "seed_value": 1, "training_id": "a training"},
    }
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    targets.to_parquet(tmp_path / "targets.parquet")
    spec = {"summary": summary, "store": str(corpus.log_mel_spectrograms.directory)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))

    _launch_like_torchrun(EVALUATE_SCRIPT, tmp_path, cli.free_port())

    first = pd.read_parquet(tmp_path / "predictions-0-fold_0.seed_0.parquet")
    tested = targets.loc[targets["split"] == "test", "clip_id"]
    assert sorted(first["clip_id"]) == sorted(tested)
    metrics = json.loads((tmp_path / "metrics-0.json").read_text())
    assert metrics["fold_0.seed_0"]["test_clips"] == len(tested)
    assert metrics["fold_0.seed_0"]["training_id"] == "a training"
    assert not list(tmp_path.glob("predictions-1-*"))  # rank 1 evaluated no cell
    assert json.loads((tmp_path / "metrics-1.json").read_text()) == {}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_under_torchrun_rank_zero_decides_about_a_stale_checkpoint_for_everyone(
    corpus, audio_config, tmp_path, cli
):
    config = _one_cell(audio_config(num_nodes=2, devices=1, max_epochs=2, min_epochs=1))
    targets, _ = _targets(corpus, config)
    targets.to_parquet(tmp_path / "targets.parquet")
    spec = {
        "config": config,
        "stores": {"log_mel_spectrograms": str(corpus.log_mel_spectrograms.directory)},
        "stats": corpus.spectrogram_stats,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    # An interrupted run of other parameters left its checkpoint: not a checkpoint of this run,
    # and not even a readable one, so a rank that resumed from it would fail.
    stale = Path(config["checkpoint_dir"]) / PHASE
    stale.mkdir(parents=True)
    (stale / "last.ckpt").write_bytes(b"not this run's checkpoint")
    (stale / "fingerprint.json").write_text(json.dumps({"fingerprint": "another run"}))

    _launch_like_torchrun(NODE_SCRIPT, tmp_path, cli.free_port())

    weights = [torch.load(tmp_path / f"weights-{r}.pt", weights_only=True) for r in (0, 1)]
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, atol=0, rtol=0)
    histories = [pd.read_parquet(tmp_path / f"history-{r}.parquet") for r in (0, 1)]
    assert list(histories[0]["epoch"]) == [0, 1]  # trained afresh, from epoch 0
    pd.testing.assert_frame_equal(
        histories[1].drop(columns="train_seconds"), histories[0].drop(columns="train_seconds")
    )
    assert not stale.exists()  # the finished run removed its folder


@pytest.mark.timeout(600)
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_evaluation_under_either_precision_matches_the_fp32_served_model(
    corpus, audio_config, precision
):
    """On a GPU the evaluation runs under bf16 autocast, the served model in fp32 on the CPU;
    bf16 autocast exists on the CPU too, so both precisions are compared here."""
    config = audio_config(precision=precision, accelerator="cpu")
    targets, _ = _targets(corpus, config)
    model_config = sized_model_config(config, {"audio": corpus.log_mel_spectrograms})
    torch.manual_seed(0)
    model = build_model("shared", ["audio"], model_config).eval()
    summary = {
        "phase": PHASE,
        "config": config,
        "model_kind": "shared",
        "modalities": ["audio"],
        "model_config": model_config.to_dict(),
        "spectrogram_stats": corpus.spectrogram_stats,
        "param_count": 1,
        "train_samples_per_s": 1.0,
        "epochs": 1,
        "best_epoch": 0,
        "mlflow_run_id": None,
    }
    predictions, _ = evaluate_model(
        model_weights=model.state_dict(),
        targets=targets,
        training_summary=summary,
        log_mel_spectrograms=corpus.log_mel_spectrograms,
    )
    # The served model's way: fp32 on the CPU, the spectrogram standardised one clip at a time.
    served = restore_model("shared", ["audio"], model_config.to_dict(), model.state_dict())
    with torch.inference_mode():
        expected = torch.cat(
            [
                served.predict_proba(
                    audio=torch.from_numpy(
                        apply_spectrogram_stats(
                            corpus.log_mel_spectrograms.get(clip), corpus.spectrogram_stats
                        )
                    )[None]
                )
                for clip in predictions["clip_id"]
            ]
        ).numpy()
    got = predictions[list(PROBABILITY_COLUMNS)].to_numpy()
    if precision == "32-true":
        np.testing.assert_allclose(got, expected, atol=1e-5)
    else:
        # bf16 keeps 8 bits of mantissa: close, not equal, and the same decision wherever the
        # two best classes are not within that rounding of each other.
        assert not np.array_equal(got, expected), "bf16 autocast must have been applied"
        np.testing.assert_allclose(got, expected, atol=3e-2)
        top2 = np.sort(expected, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 3e-2
        assert (got.argmax(axis=1)[clear] == expected.argmax(axis=1)[clear]).all()
