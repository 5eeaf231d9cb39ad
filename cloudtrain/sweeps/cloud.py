"""Cloud sweeps: the plan of one trial, the cloud's tuning request, and its budget check.

Only rendering (``cloudtrain sweep SPEC --cloud C --dry-run``) is built; submitting a tuning job
to a cloud (and following it with status/logs/cancel/list/wait) is not, and is refused plainly.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import UsageError
from cloudtrain.sweeps.bounds import check_sweep_budget
from cloudtrain.sweeps.space import require_sweep, without_sweep

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.runner import Runner
    from cloudtrain.specfile import LoadedSpec


def render(loaded: "LoadedSpec", cloud: str, runner: "Runner", *, dry_run: bool = True) -> dict[str, Any]:
    """The tuning request of ``cloud`` for the spec's sweep, validated with the cloud SDK's own
    validation; refused when the sweep's bound exceeds ``sweep.budget``."""
    sweep = require_sweep(loaded.spec)
    plan = runner.plan(without_sweep(loaded), cloud, dry_run=dry_run)
    check_sweep_budget(sweep, plan.estimate)
    if cloud == "sagemaker":
        from cloudtrain.sweeps import sagemaker

        request = sagemaker.build_tuning_request(plan, sweep)
        sagemaker.validate_tuning_request(request)
        return {"operation": "CreateHyperParameterTuningJob", "request": request}
    if cloud == "vertex":
        from cloudtrain.sweeps import vertex

        request = vertex.build_tuning_request(plan, sweep)
        vertex.validate_tuning_request(request)
        return {"operation": "HyperparameterTuningJob", "request": request}
    if cloud == "azureml":
        from cloudtrain.sweeps import azureml

        document = azureml.build_yaml(plan, sweep)
        azureml.validate_yaml(document, loaded.base_dir)
        return {"operation": "sweep job (YAML)", "request": document}
    raise UsageError(f"{cloud} has no tuning service cloudtrain can render", "use --cloud sagemaker, vertex or azureml")


def show_or_submit(loaded: "LoadedSpec", cloud: str, runner: "Runner", *, dry_run: bool, wait: bool, as_json: bool) -> None:
    if not dry_run:
        raise UsageError(f"submitting a sweep to {cloud} is not built yet: only its request can be shown",
                         f"cloudtrain sweep SPEC --cloud {cloud} --dry-run; or run the sweep here (no --cloud)")
    rendered = render(loaded, cloud, runner)
    if as_json or cloud != "azureml":
        print(json.dumps(rendered if as_json else rendered["request"], indent=2, default=str))
    else:
        import yaml

        print(yaml.safe_dump(rendered["request"], sort_keys=False))
