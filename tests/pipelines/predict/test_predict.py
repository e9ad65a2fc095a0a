"""The predict pipeline and the registered media model, on a phase trained on a tiny demo corpus:
the same probabilities as the phase's evaluation, new formats, missing modalities, bad files, and
the model served over HTTP by `mlflow models serve`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avshared import media
from avshared.crema_d import EMOTIONS
from avshared.inference.prediction import TABLE_WIDTH, window_count

pytestmark = pytest.mark.slow

PROBABILITIES = [f"p_{emotion}" for emotion in EMOTIONS]
MODEL_URI = "models:/avshared-bimodal@candidate"


def _test_clips(project) -> pd.DataFrame:
    table = pd.read_parquet(project.latest("data/07_model_output/bimodal/test_predictions.parquet"))
    return table.loc[table["condition"] == "audiovisual"].set_index("clip_id")


def _clip_media(root: Path, clip_id: str) -> tuple[list[np.ndarray], float, np.ndarray, int]:
    flv, wav = root / "VideoFlash" / f"{clip_id}.flv", root / "AudioWAV" / f"{clip_id}.wav"
    info = media.probe_video(flv)
    frames = media.read_frames(flv, range(info.frame_count))
    samples, rate = media.read_audio(wav)
    return frames, info.fps, samples[0], rate


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def recordings(trained_project, tmp_path_factory) -> Path:
    """The test split's WAV+FLV pairs as CREMA-D lays them out, and new recordings made here."""
    folder = tmp_path_factory.mktemp("new_recordings")
    root = trained_project.crema_d_root
    clips = list(_test_clips(trained_project).index)
    for sub, suffix in (("AudioWAV", ".wav"), ("VideoFlash", ".flv")):
        (folder / sub).mkdir()
        for clip_id in clips:
            shutil.copy(root / sub / f"{clip_id}{suffix}", folder / sub)
    frames, fps, samples, rate = _clip_media(root, clips[0])
    media.write_container(folder / "phone_video.mp4", frames, fps, samples, rate)
    media.write_container(folder / "muted_video.mp4", frames, fps)
    parts = [_clip_media(root, clip_id) for clip_id in clips[:3]]
    media.write_container(
        folder / "long_take.mp4",
        [frame for part in parts for frame in part[0]],
        fps,
        np.concatenate([part[2] for part in parts]),
        rate,
    )
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "zero_length.wav").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def prediction_run(trained_project, recordings):
    """`kedro run --pipelines=predict` on the recordings folder; the table, the log and the files
    of the project and of the folder before the run."""
    before = _files(trained_project.path), _files(recordings)
    log = trained_project.kedro("--pipelines=predict", f"--params=predict.inputs={recordings}")
    table = pd.read_csv(
        trained_project.latest("data/07_model_output/predictions.csv"), keep_default_na=False
    )
    return table.set_index("input"), log, before


def test_probabilities_equal_the_evaluation_of_the_same_clips(trained_project, prediction_run):
    table, _, _ = prediction_run
    evaluated = _test_clips(trained_project)
    predicted = table.loc[evaluated.index]
    np.testing.assert_allclose(
        predicted[PROBABILITIES].to_numpy(float), evaluated[PROBABILITIES].to_numpy(), atol=1e-5
    )
    assert (predicted["modalities"] == "audio+video").all()
    assert (predicted["predicted"] == [EMOTIONS[i] for i in evaluated["predicted"]]).all()
    metrics = json.loads(
        trained_project.latest("data/08_reporting/bimodal/metrics.json").read_text()
    )
    assert (predicted["mlflow_run_id"] == metrics["mlflow_run_id"]).all()
    assert (table["data"] == "demo").all()


def test_new_formats_missing_audio_and_long_recordings(prediction_run, recordings):
    table, _, _ = prediction_run
    phone = table.loc[str(recordings / "phone_video.mp4")]
    assert (phone["modalities"], phone["windows"], phone["problem"]) == ("audio+video", 1, "")
    muted = table.loc[str(recordings / "muted_video.mp4")]
    assert (muted["modalities"], muted["flags"], muted["problem"]) == (
        "video",
        "no audio track",
        "",
    )
    assert muted[PROBABILITIES].astype(float).sum() == pytest.approx(1.0, abs=1e-5)
    long_take = table.loc[str(recordings / "long_take.mp4")]
    samples, rate = media.read_container_audio(recordings / "long_take.mp4")
    assert long_take["windows"] == window_count(samples.shape[1] / rate, 3.0) > 1
    assert long_take["modalities"] == "audio+video"


def test_bad_files_get_a_reason_and_the_run_goes_on(prediction_run, recordings, trained_project):
    table, log, (project_before, recordings_before) = prediction_run
    assert len(table) == len(_test_clips(trained_project)) + 5
    bad = table.loc[table["problem"] != ""]
    assert set(bad.index) == {str(recordings / "corrupt.mp4"), str(recordings / "zero_length.wav")}
    assert bad["problem"].str.contains("cannot read").all()
    assert (bad[PROBABILITIES] == "").all().all() and (bad["predicted"] == "").all()
    assert (table.loc[table["problem"] == "", "predicted"].isin(EMOTIONS)).all()
    assert "DEMO model (trained on generated data" in log
    # The printed table: its header, and its rows each on one line of at most TABLE_WIDTH.
    lines = log.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("input ")) + 2
    assert lines[header - 1] == "-" * TABLE_WIDTH
    rows = lines[header : header + min(len(table), 20)]
    assert all(len(row) <= TABLE_WIDTH for row in rows)
    assert sum(row.split()[1] in EMOTIONS for row in rows) >= len(rows) - len(bad)
    # The run wrote its table and its MLflow records, nothing else, and left the inputs alone.
    new = _files(trained_project.path) - project_before
    assert {p.parts[:3] for p in new} == {("data", "07_model_output", "predictions.csv")}
    assert _files(recordings) == recordings_before


def test_model_specification_holds_the_training_preprocessing(trained_project):
    spec = json.loads(trained_project.latest("data/06_models/bimodal/model_spec.json").read_text())
    stats = json.loads(
        trained_project.latest("data/05_model_input/spectrogram_stats.json").read_text()
    )
    store_attrs = json.loads(
        (trained_project.latest("data/04_feature/face_frames") / "index.json").read_text()
    )["attrs"]
    assert spec["spectrogram_stats"] == stats
    assert spec["features"]["video"] == {
        key: value for key, value in store_attrs.items() if key in spec["features"]["video"]
    }
    assert spec["features"]["video"]["num_frames"] == store_attrs["num_frames"]
    assert (spec["phase"], spec["modalities"], spec["demo"]) == (
        "bimodal",
        ["audio", "video"],
        True,
    )


# prediction_run first: the newest predictions.csv must then be this test's.
def test_registered_model_predicts_as_the_phase(trained_project, prediction_run, recordings):
    pattern = str(recordings / "AudioWAV" / "*.wav")
    trained_project.kedro(
        "--pipelines=predict", f"--params=predict.inputs={pattern},predict.model={MODEL_URI}"
    )
    registered = pd.read_csv(trained_project.latest("data/07_model_output/predictions.csv"))
    registered = registered.set_index("input")
    assert len(registered) == len(list((recordings / "AudioWAV").glob("*.wav")))
    assert (registered["model"] == MODEL_URI).all()
    assert (registered["flags"] == "audio-only file").all()
    # The same model: the audio-only probabilities of the evaluation's audio_only condition.
    evaluated = pd.read_parquet(
        trained_project.latest("data/07_model_output/bimodal/test_predictions.parquet")
    )
    audio_only = evaluated.loc[evaluated["condition"] == "audio_only"].set_index("clip_id")
    by_clip = registered.rename(index=lambda path: Path(path).stem).loc[audio_only.index]
    np.testing.assert_allclose(
        by_clip[PROBABILITIES].to_numpy(), audio_only[PROBABILITIES].to_numpy(), atol=1e-5
    )


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _mlflow_env(trained_project, cli) -> dict[str, str]:
    return cli.env(MLFLOW_TRACKING_URI=trained_project.tracking_uri)


def test_served_model_answers_an_http_request(
    trained_project, recordings, prediction_run, tmp_path, cli
):
    port = cli.free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", MODEL_URI]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        command,
        env=_mlflow_env(trained_project, cli),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        cli.wait_until_healthy(f"http://127.0.0.1:{port}", server, tmp_path / "serve.log")
        phone = (recordings / "phone_video.mp4").read_bytes()
        answer = _post(
            f"http://127.0.0.1:{port}/invocations",
            {
                "dataframe_split": {
                    "columns": ["bytes", "name", "path"],
                    "data": [
                        [base64.b64encode(phone).decode(), "phone_video.mp4", None],
                        [None, None, str(recordings / "muted_video.mp4")],
                        [None, None, str(recordings / "nowhere.mkv")],
                    ],
                }
            },
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    rows = answer["predictions"]
    assert [row["input"] for row in rows] == [
        "phone_video.mp4",
        str(recordings / "muted_video.mp4"),
        str(recordings / "nowhere.mkv"),
    ]
    table, _, _ = prediction_run
    phone_row = table.loc[str(recordings / "phone_video.mp4")]
    assert [rows[0][p] for p in PROBABILITIES] == pytest.approx(
        phone_row[PROBABILITIES].astype(float).tolist(), abs=1e-5
    )
    assert (rows[0]["modalities"], rows[1]["modalities"]) == ("audio+video", "video")
    assert rows[1]["flags"] == "no audio track"
    assert rows[2]["problem"].startswith("missing") and rows[2]["predicted"] == ""


def test_mlflow_models_predict_reads_media_paths(trained_project, recordings, tmp_path, cli):
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps({"dataframe_records": [{"path": str(recordings / "phone_video.mp4")}]})
    )
    output = tmp_path / "answer.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "mlflow", "models", "predict", "-m", MODEL_URI),
            *("-i", str(request), "-t", "json", "-o", str(output), "--env-manager", "local"),
        ],
        env=_mlflow_env(trained_project, cli),
        check=True,
        capture_output=True,
        timeout=300,
    )
    rows = json.loads(output.read_text())["predictions"]
    assert len(rows) == 1 and rows[0]["modalities"] == "audio+video"
    assert rows[0]["predicted"] in EMOTIONS


LOAD_WITHOUT_SRC = """
import json, sys
src = sys.argv[1]
sys.path[:] = [p for p in sys.path if not p.startswith(src)]
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[2])
import avshared
assert not avshared.__file__.startswith(src), avshared.__file__
import pandas as pd
table = model.predict(pd.DataFrame({"path": [sys.argv[3]]}))
print(json.dumps({"avshared": avshared.__file__, "row": table.iloc[0].to_dict()}))
"""


def test_the_registered_model_carries_its_code_and_the_locked_requirements(
    trained_project, prediction_run, recordings, cli, locked_versions
):
    """It loads and predicts in a process whose path lacks the project's src/: the avshared it
    runs is the copy logged with the model. Its requirements are the lock's pins."""
    source = str(Path(__file__).resolve().parents[3] / "src")
    video = recordings / "phone_video.mp4"
    answer = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_SRC, source, MODEL_URI, str(video)],
        check=False,
        env=_mlflow_env(trained_project, cli),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    loaded = json.loads(answer.stdout.strip().splitlines()[-1])
    assert "/code/avshared/" in loaded["avshared"]
    table, _, _ = prediction_run
    assert [loaded["row"][p] for p in PROBABILITIES] == pytest.approx(
        table.loc[str(video), PROBABILITIES].astype(float).tolist(), abs=1e-5
    )
    import mlflow

    mlflow.set_tracking_uri(trained_project.tracking_uri)
    requirements = Path(mlflow.artifacts.download_artifacts(f"{MODEL_URI}/requirements.txt"))
    pins = dict(line.split("==") for line in requirements.read_text().splitlines() if "==" in line)
    assert pins["torch"] == locked_versions["torch"]
    assert pins["opencv-python-headless"] == locked_versions["opencv-python-headless"]
    assert all(locked_versions.get(name) == version for name, version in pins.items())
