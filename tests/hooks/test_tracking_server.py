"""The tracking-server probe: a server that does not answer stops the run within seconds, naming
its URI, or, under AVSHARED_TRACKING_FALLBACK=local, the run is redirected to the local store."""

from __future__ import annotations

import http.server
import shutil
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from kedro.config import OmegaConfigLoader
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from avshared.hooks.tracking_server import (
    FALLBACK_ENV,
    LOCAL_STORE,
    TrackingServerProbe,
    TrackingServerUnreachableError,
    ensure_experiment,
)
from avshared.settings import CONFIG_LOADER_ARGS

PROJECT_CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _context(tmp_path: Path, uri: str) -> SimpleNamespace:
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_CONF, conf / "base")
    (conf / "local").mkdir()
    (conf / "local" / "mlflow.yml").write_text(f"server:\n  mlflow_tracking_uri: {uri}\n")
    return SimpleNamespace(config_loader=OmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS))


# A hang guard, not a speed test: MLflow's own retries would take minutes.
@pytest.mark.timeout(120)
def test_an_unreachable_server_fails_fast_naming_its_uri(tmp_path, monkeypatch):
    monkeypatch.delenv(FALLBACK_ENV, raising=False)
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(TrackingServerUnreachableError, match=rf"{uri} is unreachable") as error:
        TrackingServerProbe().after_context_created(_context(tmp_path, uri))
    assert FALLBACK_ENV in str(error.value)


def test_the_fallback_records_locally_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(FALLBACK_ENV, "local")
    uri = f"http://127.0.0.1:{_closed_port()}"
    context = _context(tmp_path, uri)
    TrackingServerProbe().after_context_created(context)
    assert context.config_loader["mlflow"]["server"]["mlflow_tracking_uri"] == LOCAL_STORE
    assert context.config_loader["mlflow"]["tracking"]["experiment"]["name"] == "avshared"
    assert f"{uri} is unreachable" in caplog.text and LOCAL_STORE in caplog.text


class _LoginRequired(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_server_behind_a_login_is_up_and_a_wrong_login_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv(FALLBACK_ENV, raising=False)
    server = http.server.HTTPServer(("127.0.0.1", 0), _LoginRequired)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_port}"
    try:
        with pytest.raises(MlflowException, match="401") as refused:
            TrackingServerProbe().after_context_created(_context(tmp_path, uri))
    finally:
        server.shutdown()
    assert uri in str(refused.value) or "get-by-name" in str(refused.value)


def test_local_stores_are_not_probed(tmp_path):
    context = _context(tmp_path, "sqlite:///mlflow.db")
    TrackingServerProbe().after_context_created(context)
    assert context.config_loader["mlflow"]["server"]["mlflow_tracking_uri"] == LOCAL_STORE


def test_an_experiment_created_meanwhile_by_another_run_is_fine(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {
        "experiment": {
            "name": "avshared",
            "create_experiment_kwargs": {"tags": {"mlflow.experimentKind": "custom"}},
        }
    }
    ensure_experiment(uri, tracking)
    created = MlflowClient(uri).get_experiment_by_name("avshared")
    assert created.tags["mlflow.experimentKind"] == "custom"

    # Another run creates it between this run's look-up and its creation.
    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", lambda self, name: None)
    ensure_experiment(uri, tracking)
    monkeypatch.undo()
    assert len(MlflowClient(uri).search_experiments(filter_string="name = 'avshared'")) == 1
