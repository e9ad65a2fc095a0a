"""Checks the parameters once, when a pipeline starts, against their schemas
(avshared.parameters): a typo or a value out of range fails before any node runs, with a message
that names the key and the allowed values."""

from __future__ import annotations

from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl

from avshared.parameters import validate_parameters


class ParameterValidationHook:
    """Validates ``context.params`` (the parameter files with ``--params`` applied) as soon as the
    context exists; when a pipeline is about to run, the devices of every training phase are
    checked against this machine too."""

    def __init__(self) -> None:
        self._params: dict[str, Any] | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._params = context.params
        validate_parameters(self._params, check_devices=False)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if self._params is not None:
            validate_parameters(self._params)
