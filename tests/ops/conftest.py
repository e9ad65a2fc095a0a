"""Fixtures of the operations tests: `kedro run` as a user starts it, in scratch copies of the
project on one tiny generated corpus, and a team's tracking server (MLflow on PostgreSQL).

The corpus (10 actors x 1 sentence, 60 clips, no faults) is generated once per session and only read
by the projects; each project trains the `tiny` model preset for a few epochs, so that a `kedro run`
costs seconds of training and the start-up of Kedro dominates.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_CORPUS = {
    "demo_data": {
        "actors": list(range(1001, 1011)),
        "sentences": ["DFA"],
        "faults": {},
    }
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="session")
def tiny_corpus(scratch_project, tmp_path_factory, cli) -> Path:
    """A 60-clip demo corpus in CREMA-D's layout, made once by `kedro run --pipelines=demo_data`."""
    root = tmp_path_factory.mktemp("tiny_corpus")
    project = scratch_project(root)
    corpus = root / "crema_d_demo"
    local = project / "conf" / "local"
    (local / "globals.yml").write_text(yaml.safe_dump({"crema_d_root": str(corpus)}))
    (local / "parameters_demo_data.yml").write_text(yaml.safe_dump(TINY_CORPUS))
    cli.run(project, "--pipelines=demo_data")
    return corpus


@pytest.fixture(scope="session")
def tiny_project(scratch_project, tiny_corpus, tmp_path_factory) -> Callable[..., Path]:
    """Factory: a scratch project on the tiny corpus training the `tiny` preset; keyword arguments
    are extra conf/local files, e.g. ``mlflow={...}`` or ``parameters_training={...}`` (merged into
    the tiny settings)."""

    def make(name: str, **conf: dict[str, Any]) -> Path:
        project = scratch_project(tmp_path_factory.mktemp(name))
        files = {
            "globals": {"crema_d_root": str(tiny_corpus)},
            "parameters_training": {
                "training": {
                    "defaults": {
                        "model": {"preset": "tiny"},
                        "trainer": {"max_epochs": 2, "min_epochs": 1, "progress_bar": False},
                    }
                }
            },
            "parameters_reporting": {"reporting": {"bootstrap": {"n_boot": 50}}},
        }
        for file, content in conf.items():
            files[file] = _merge(files.get(file, {}), content)
        for file, content in files.items():
            path = project / "conf" / "local" / f"{file}.yml"
            path.write_text(yaml.safe_dump(content, sort_keys=False))
        return project

    return make


# ---------------------------------------------------------------- a team's tracking server


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install postgresql (.ci/run does) to run the tracking-server tests"
        )
    return Path(found[-1]).parent


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as Debian's `postgres` user then."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        pytest.skip("running as root without `runuser`: cannot start PostgreSQL as `postgres`")
    return ["runuser", "-u", "postgres", "--", *command]


# Module scope: the server's workers keep a core busy, so they stop with the tests that use them.
@pytest.fixture(scope="module")
def postgres(cli) -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1 with an `mlflow` database; yields its URI."""
    binaries = _postgres_bin()
    # Not under pytest's folders: those are private to the test's user, and the cluster's files
    # belong to `postgres` when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="avshared-postgres-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    password_file = folder / "password"
    password_file.write_text("mlflow-test\n")
    if os.geteuid() == 0:
        for path in (folder, sockets, password_file):
            shutil.chown(path, "postgres")
    subprocess.run(
        _as_postgres_user(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "mlflow",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = cli.free_port()
    log = folder / "postgres.log"
    server = subprocess.Popen(
        _as_postgres_user(
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(sockets),
            ]
        ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    env = os.environ | {"PGPASSWORD": "mlflow-test"}
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
            check=False,
        ).returncode:
            assert server.poll() is None, f"postgres exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"postgres not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        createdb = [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow"]
        for database in ("mlflow", "mlflow_auth"):  # the runs; the users of MLflow's auth app
            subprocess.run([*createdb, database], env=env, check=True, capture_output=True)
        yield f"postgresql://mlflow:mlflow-test@127.0.0.1:{port}/mlflow"
    finally:
        _stop(server)  # PostgreSQL's smart shutdown
        shutil.rmtree(folder, ignore_errors=True)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to a server's process group, if it still runs."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


@dataclass(frozen=True)
class TrackingServer:
    """A running team server and the account a researcher's project logs in with."""

    url: str
    username: str
    password: str
    artifacts: Path


@pytest.fixture(scope="module")
def tracking_server(postgres, tmp_path_factory, cli) -> Iterator[TrackingServer]:
    """A team's MLflow tracking server: runs in PostgreSQL, artifacts through the server's proxy
    (--serve-artifacts) into a folder only the server writes, users and passwords checked by
    MLflow's basic-auth app (its user table in PostgreSQL too); on a free loopback port. Holds one
    researcher account besides the admin's."""
    pytest.importorskip(
        "flask_wtf", reason="MLflow's auth app needs Flask-WTF: pip install -e .[test]"
    )
    folder = tmp_path_factory.mktemp("tracking_server")
    auth_database = postgres.rsplit("/", 1)[0] + "/mlflow_auth"
    admin_password = secrets.token_urlsafe(12)
    (folder / "basic_auth.ini").write_text(
        "[mlflow]\n"
        "default_permission = EDIT\n"
        f"database_uri = {auth_database}\n"
        "admin_username = admin\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # docs/tracking.md: without the cache every request re-hashes the password (scrypt,
        # ~0.25 s of a core here), and a `kedro run` makes hundreds of requests.
        "auth_cache_ttl_seconds = 300\n"
    )
    port = cli.free_port()
    log = folder / "mlflow_server.log"
    env = cli.env(
        MLFLOW_AUTH_CONFIG_PATH=str(folder / "basic_auth.ini"),
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            postgres,
            "--serve-artifacts",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=folder,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        cli.wait_until_healthy(url, server, log)
        researcher = TrackingServer(
            url, "researcher", secrets.token_urlsafe(12), folder / "artifacts"
        )
        _create_user(url, ("admin", admin_password), researcher.username, researcher.password)
        yield researcher
    finally:
        _stop(server)


def _create_user(url: str, admin: tuple[str, str], username: str, password: str) -> None:
    token = base64.b64encode(":".join(admin).encode()).decode()
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/users/create",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
