"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

if TYPE_CHECKING:
    import torch

    from avshared.models import ModelConfig

# Kedro's telemetry plugin must never prompt or reach the network from tests.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The real CREMA-D text data (no media), shipped with the tests (ODbL: tests/data/crema_d/).
REAL_METADATA = Path(__file__).resolve().parent / "data" / "crema_d"


@pytest.fixture(scope="session")
def real_crema_d_metadata() -> Path:
    """The real CREMA-D ratings and metadata files shipped in tests/data/crema_d."""
    assert (REAL_METADATA / "processedResults" / "tabulatedVotes.csv").is_file(), (
        f"the real CREMA-D metadata shipped with the project is missing from {REAL_METADATA}: "
        "restore it with `git checkout -- tests/data/crema_d`"
    )
    return REAL_METADATA


@pytest.fixture(scope="session")
def locked_versions() -> dict[str, str]:
    """requirements.lock as {canonical name: version}: the tested environment."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines():
        name, _, pinned = line.split("#", 1)[0].strip().partition("==")
        if pinned:
            pins[canonicalize_name(name)] = pinned.split(";", 1)[0].strip()
    return pins


#: A `kedro run` of a test is stopped after this long: it catches hangs, not slowness (a loaded
#: 2-core machine runs these far slower than an idle one).
KEDRO_TIMEOUT_S = 1800


def kedro_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no MLflow settings of the test process, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return env | {"KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"} | extra


def start_kedro(project: Path, *args: str, **env: str) -> subprocess.Popen:
    """`kedro run <args>` in ``project``, in its own process group (its workers die with it)."""
    # Beside the project, not in it: tests check what a run writes into the project.
    log_path = project.parent / f"kedro-{time.monotonic_ns()}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", *args],
            cwd=project,
            env=kedro_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.log_path = log_path
    return process


def finish(process: subprocess.Popen, timeout: float = KEDRO_TIMEOUT_S) -> tuple[int, str]:
    """Wait for a `start_kedro` process; its exit code and output."""
    try:
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, process.log_path.read_text()


def run_kedro(project: Path, *args: str, **env: str) -> str:
    """`kedro run <args>` to the end; fails the test with the log's tail if it fails."""
    code, log = finish(start_kedro(project, *args, **env))
    assert code == 0, f"kedro run {' '.join(args)} failed ({code}):\n{log[-6000:]}"
    return log


def kill_group(process: subprocess.Popen) -> None:
    """kill -9 the run and its worker processes."""
    os.killpg(process.pid, signal.SIGKILL)
    finish(process)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: How long a server started by a test (mlflow server, mlflow models serve) may take to answer.
SERVER_START_S = 180


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    """Wait until ``url``/health answers 200; fail with the server's log if it exits or hangs."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"{url} exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not healthy after {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


class KedroCli:
    """`kedro run` as a user starts it, for test modules (which cannot import a conftest)."""

    start = staticmethod(start_kedro)
    finish = staticmethod(finish)
    run = staticmethod(run_kedro)
    kill = staticmethod(kill_group)
    free_port = staticmethod(free_port)
    env = staticmethod(kedro_env)
    wait_until_healthy = staticmethod(wait_until_healthy)


@pytest.fixture(scope="session")
def cli() -> KedroCli:
    return KedroCli()


@pytest.fixture
def sqlite_tracking(tmp_path) -> Iterator[str]:
    """MLflow's global tracking URI on a throwaway SQLite store for one test, restored after."""
    import mlflow  # here, not at the top: most tests never touch MLflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Debian's headless Chromium through Playwright (never a browser Playwright downloads)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            "headless Chromium not found at /usr/bin/chromium: install Debian's `chromium` package "
            "(apt-get install chromium) to run the browser tests"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass(frozen=True)
class ProjectRun:
    """A copy of the project after `kedro run --pipelines=demo_data` and `kedro run`."""

    path: Path
    tracking_uri: str
    log: str

    def latest(self, dataset_folder: str) -> Path:
        """The newest version of a versioned dataset, e.g. ``data/03_primary/split.parquet``."""
        folder = self.path / dataset_folder
        versions = sorted(folder.iterdir())
        assert versions, f"no version of {dataset_folder}"
        return versions[-1] / folder.name


def _small_demo_conf(local: Path) -> None:
    """conf/local of a smaller but honest run: 16 actors (a dozen to learn faces from, the others
    unseen), 4 sentences, the project's training settings (epochs, early stopping, modality
    dropout) with the `tiny` model preset. The tests check that every phase of the job learns from
    the data it is given; how far the default model gets is docs/results.md's business (with the
    default preset this fixture alone took about 10 minutes on 2 cores)."""
    demo = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_demo_data.yml").read_text())
    demo["demo_data"]["actors"] = [*range(1001, 1008), *range(1010, 1017), 1064, 1076]
    demo["demo_data"]["sentences"] = ["IEO", "TIE", "MTI", "DFA"]
    # The project's LFS-pointer fault sits on an ITS clip: move it to a sentence of this corpus.
    faults = demo["demo_data"]["faults"]
    faults["1005_DFA_SAD_XX"] = faults.pop("1005_ITS_SAD_XX")
    training = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())
    training["training"]["defaults"]["model"]["preset"] = "tiny"
    training["training"]["defaults"]["trainer"]["progress_bar"] = False
    reporting = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_reporting.yml").read_text())
    reporting["reporting"]["bootstrap"]["n_boot"] = 200
    for name, params in (("demo_data", demo), ("training", training), ("reporting", reporting)):
        (local / f"parameters_{name}.yml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_scratch_project(folder: Path) -> Path:
    """A copy of the project's settings (pyproject.toml, conf/base, an empty conf/local) in
    ``folder``/project, so that a `kedro run` there never writes the project's data/ or MLflow
    store. The package is imported from where it is installed; src/ only has to exist."""
    project = folder / "project"
    (project / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    # The consent file a user writes once (ignored by git): kedro there never reaches out.
    (project / ".telemetry").write_text("consent: false\n")
    shutil.copytree(PROJECT_ROOT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    return project


@pytest.fixture(scope="session")
def scratch_project():
    """``make_scratch_project``, for tests in any folder."""
    return make_scratch_project


@pytest.fixture(scope="session")
def demo_project_run(tmp_path_factory) -> ProjectRun:
    """The README's main job on a small demo corpus, in a scratch copy of the project: the demo
    data, then `kedro run` (every phase, the baseline and the report), as a user runs them."""
    project = make_scratch_project(tmp_path_factory.mktemp("demo_run"))
    _small_demo_conf(project / "conf" / "local")
    log = [run_kedro(project, "--pipelines=demo_data"), run_kedro(project)]
    return ProjectRun(project, f"sqlite:///{project / 'mlflow.db'}", "\n".join(log))


# ---------------------------------------------------------------- a tiny model and its inputs
# One tiny model configuration for the model, training and analysis tests; a test that needs other
# fields derives its own with dataclasses.replace(tiny_config, ...). torch and avshared.models are
# imported in the fixtures: most tests never build a model.

#: random_inputs(config, batch, seed=0, video_dtype=torch.float32) -> (audio, video)
RandomInputs = Callable[..., "tuple[torch.Tensor, torch.Tensor]"]


@pytest.fixture
def tiny_config() -> ModelConfig:
    """The tiny preset, 16 wide, on 16 mel bands x 32 frames (2 x 4 audio tokens of 8 x 8) and 4
    frames of 16 x 16 pixels (2 x 2 x 2 video tubelets of 2 x 8 x 8)."""
    from avshared.models import ModelConfig

    return ModelConfig.preset(
        "tiny",
        dim=16,
        n_mels=16,
        audio_frames=32,
        audio_patch=(8, 8),
        video_frames=4,
        image_size=16,
        video_tubelet=(2, 8, 8),
    )


@pytest.fixture
def random_inputs() -> RandomInputs:
    """A factory of seeded random inputs for ``batch`` clips: audio (B, 1, n_mels, frames),
    standard normal; video (B, T, 3, H, W), uniform in [0, 1) or, as uint8, in 0..255."""
    import torch

    def make(
        config: ModelConfig,
        batch: int,
        seed: int = 0,
        video_dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        audio = torch.randn(batch, 1, config.n_mels, config.audio_frames, generator=generator)
        shape = (batch, config.video_frames, 3, config.image_size, config.image_size)
        if video_dtype == torch.uint8:
            video = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        else:
            video = torch.rand(shape, generator=generator, dtype=video_dtype)
        return audio, video

    return make
