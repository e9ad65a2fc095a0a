"""A team's tracking server, checked before kedro-mlflow uses it: fail fast when it is down, and
create the experiment safely when several runs start at once.

kedro-mlflow contacts the server as soon as Kedro creates the context, and MLflow's HTTP client
retries a refused connection with back-off for minutes before it gives up. This hook runs first
(``tryfirst``) and asks the server's ``/health`` endpoint once, with a short timeout. When nothing
answers, the run stops before any node runs, with a message naming the URI, or, with the environment
variable ``AVSHARED_TRACKING_FALLBACK=local``, it records to the project's local store
(``sqlite:///mlflow.db``, artifacts in ``mlruns/``) and says so in the log. Any HTTP answer, even
401 from a server behind a login, counts as reachable.

kedro-mlflow then looks the experiment up and creates it when missing; two runs starting together
on a new server both find it missing, and the second creation fails (RESOURCE_ALREADY_EXISTS). So
the hook creates the experiment first, taking "already exists" as success.

Local stores (sqlite, file paths) and database URIs are left to kedro-mlflow: one project's runs
never overlap (``avshared.hooks.run_lock``). See docs/tracking.md.
"""

from __future__ import annotations

import copy
import logging
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

logger = logging.getLogger(__name__)

FALLBACK_ENV = "AVSHARED_TRACKING_FALLBACK"
TIMEOUT_ENV = "AVSHARED_TRACKING_PROBE_TIMEOUT_S"
LOCAL_STORE = "sqlite:///mlflow.db"
DEFAULT_TIMEOUT_S = 5.0


class TrackingServerUnreachableError(RuntimeError):
    """The tracking server named in mlflow.yml did not answer."""


def probe(uri: str, timeout_s: float) -> str | None:
    """None if an HTTP server answers at ``uri``, else why not (for the message)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # it answered, if only to refuse: the server is up
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


class TrackingServerProbe:
    """Checks the HTTP tracking server of mlflow.yml before kedro-mlflow uses it."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own after_context_created
    def after_context_created(self, context: Any) -> None:
        try:
            conf = context.config_loader["mlflow"]
        except (KeyError, MissingConfigException):
            return  # no mlflow.yml: kedro-mlflow's local default
        uri = (conf.get("server") or {}).get("mlflow_tracking_uri") or ""
        if urlparse(uri).scheme not in {"http", "https"}:
            return
        timeout_s = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
        problem = probe(uri, timeout_s)
        if problem is None:
            _export_credentials(context, conf)
            ensure_experiment(uri, conf.get("tracking") or {})
            return
        if os.environ.get(FALLBACK_ENV, "").lower() == "local":
            logger.warning(
                "MLflow tracking server %s is unreachable (%s): this run is recorded in the "
                "project's local store %s instead (%s=local). Look at it with `kedro mlflow ui`.",
                uri,
                problem,
                LOCAL_STORE,
                FALLBACK_ENV,
            )
            local = copy.deepcopy(dict(conf))
            local["server"]["mlflow_tracking_uri"] = LOCAL_STORE
            context.config_loader["mlflow"] = local
            return
        raise TrackingServerUnreachableError(
            f"MLflow tracking server {uri} is unreachable ({problem}; waited {timeout_s:g} s). "
            "Start it or correct server.mlflow_tracking_uri in conf/local/mlflow.yml; to record "
            f"this run in the project's local store instead, set {FALLBACK_ENV}=local."
        )


def _export_credentials(context: Any, conf: dict[str, Any]) -> None:
    """The login of mlflow.yml's ``server.credentials`` as environment variables, as kedro-mlflow
    exports them a moment later (MLflow's client reads them there)."""
    key = (conf.get("server") or {}).get("credentials")
    if key:
        for name, value in context.config_loader["credentials"].get(key, {}).items():
            os.environ[name] = str(value)


def ensure_experiment(uri: str, tracking: dict[str, Any]) -> None:
    """Create the experiment of mlflow.yml's ``tracking.experiment`` on the server unless it exists;
    one created meanwhile by another run is fine."""
    experiment = tracking.get("experiment") or {}
    name = experiment.get("name")
    if not name:
        return  # kedro-mlflow names it after the package
    client = MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(name) is not None:
        return
    create = experiment.get("create_experiment_kwargs") or {}
    try:
        client.create_experiment(
            name, artifact_location=create.get("artifact_location"), tags=create.get("tags")
        )
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
