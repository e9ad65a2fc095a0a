"""Kedro project settings: https://docs.kedro.org/en/stable/kedro_project_setup/settings.html"""

from kedro.config import OmegaConfigLoader

from avshared.hooks.parameters import ParameterValidationHook
from avshared.hooks.run_lock import ProjectRunLock
from avshared.hooks.tracking import PhaseRunsHook
from avshared.hooks.tracking_server import TrackingServerProbe

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/local and --params change single keys (e.g. split.file.test_list) instead of
    # replacing a whole top-level block such as `split` or `training`.
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
    },
}

# Parameters checked against their schemas (avshared.parameters) before anything runs; one
# `kedro run` at a time per project directory; a tracking server that does not answer stops
# the run at once (docs/tracking.md); one MLflow child run per training phase, and only global rank
# 0 writes under torchrun / SLURM.
HOOKS = (ParameterValidationHook(), ProjectRunLock(), TrackingServerProbe(), PhaseRunsHook())
