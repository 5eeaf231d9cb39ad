"""The Azure ML sweep job document is built without the SDK (``sweeps.azureml.sweep_document``) and
checked against the SDK's exported ``SweepJobSchema`` (``validate_document(..., kind="sweep")``), so a
sweep's dry run does not import azure-ai-ml. Here the SDK stays the judge:

- the document is exactly what the SDK's own ``command(...)(**search_space).sweep(...)`` dumps, for
  every Azure ML spec the tests render, variants of its fields, and every kind of sweep section;
- the exported schema accepts what the SDK's ``load_job`` accepts, and refuses what it refuses.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.ai.ml")

from test_azureml_document import CASES, VARIANTS, golden_plan, plan_of  # noqa: E402

from cloudtrain.errors import CloudtrainError, SpecError  # noqa: E402
from cloudtrain.plan import Plan  # noqa: E402
from cloudtrain.providers import azureml_job  # noqa: E402
from cloudtrain.spec import Sweep  # noqa: E402
from cloudtrain.sweeps import azureml as azureml_sweep  # noqa: E402
from cloudtrain.sweeps.space import with_objective  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OBJECTIVE = {"metric": "val_accuracy", "goal": "maximize"}
SWEEPS = {
    "random, median, every parameter type": dict(
        algorithm="random", early_stopping="median", max_trials=8, max_parallel=2, objective=OBJECTIVE,
        parameters={"lr": {"type": "float", "min": 1e-4, "max": 1e-1, "scale": "log"}, "momentum": {"type": "float", "min": 0.1, "max": 0.9},
                    "epochs": {"type": "int", "min": 2, "max": 10}, "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
                    "batch_size": {"type": "categorical", "values": [32, 64]}}),
    "grid, minimize": dict(algorithm="grid", early_stopping="none", max_trials=4, max_parallel=1, objective={"metric": "loss", "goal": "minimize"},
                           parameters={"batch_size": {"type": "categorical", "values": [32, 64]}}),
    "random, hyperband": dict(algorithm="random", early_stopping="hyperband", max_trials=6, max_parallel=3, objective=OBJECTIVE,
                              parameters={"lr": {"type": "float", "min": 1e-4, "max": 1e-1}}),
    "tpe": dict(algorithm="tpe", early_stopping="none", max_trials=10, max_parallel=2, objective=OBJECTIVE,
                parameters={"lr": {"type": "float", "min": 1e-4, "max": 1e-1, "scale": "log"}, "width": {"type": "int", "min": 8, "max": 64}}),
}


def sdk_sweep_document(plan: Plan, sweep: Sweep) -> dict[str, Any]:
    """The sweep as the SDK writes it: the provider's command job loaded as the SDK's entity, given
    an input per swept parameter, called with the SDK's distributions and swept with ``.sweep``, then
    dumped (``_to_dict``), as the sweep module built it before it built the document itself. The
    command is the module's own (how the SDK dumps the job is what is compared here)."""
    from azure.ai.ml import command
    from azure.ai.ml.sweep import BanditPolicy, Choice, LogUniform, MedianStoppingPolicy, QUniform, Uniform

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = azureml_job.load_yaml_job(azureml_job.job_document(plan))
        swept = {name: plan.spec.hyperparameters.get(name, p.values[0] if p.type == "categorical" else p.min)
                 for name, p in sweep.parameters.items()}
        kwargs: dict[str, Any] = dict(
            name=job.name, display_name=job.display_name, experiment_name=job.experiment_name, tags=job.tags, code=job.code,
            command=azureml_job.command_line(plan, hps=azureml_sweep._hps_template(plan, sweep)), environment=job.environment,
            # a trial's variables name the objective for the entry shim's relay (cloudtrain.runtime.relay)
            environment_variables=with_objective(dict(job.environment_variables or {}), sweep), resources=job.resources, compute=job.compute, distribution=job.distribution,
            inputs={**{k: getattr(v, "_data", v) for k, v in job.inputs.items()}, **swept},
            outputs={k: getattr(v, "_data", v) for k, v in job.outputs.items()})
        if job.queue_settings is not None:
            kwargs["queue_settings"] = job.queue_settings
        space: dict[str, Any] = {}
        for name, p in sweep.parameters.items():
            if p.type == "categorical":
                space[name] = Choice(values=list(p.values or []))
            elif p.type == "int":
                space[name] = QUniform(min_value=int(p.min), max_value=int(p.max), q=1)
            elif p.scale == "log":
                space[name] = LogUniform(min_value=math.log(p.min), max_value=math.log(p.max))
            else:
                space[name] = Uniform(min_value=float(p.min), max_value=float(p.max))
        policy = {"median": MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=1),
                  "hyperband": BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=1)}.get(sweep.early_stopping)
        trial = command(**{k: v for k, v in kwargs.items() if v is not None})(**space)
        swept_job = trial.sweep(sampling_algorithm={"tpe": "bayesian"}.get(sweep.algorithm, sweep.algorithm),
                                primary_metric=sweep.objective.metric, goal=sweep.objective.goal.capitalize(),
                                early_termination_policy=policy)
        swept_job.set_limits(max_total_trials=sweep.max_trials, max_concurrent_trials=sweep.max_parallel,
                             trial_timeout=plan.max_runtime_seconds)
        document = json.loads(json.dumps(swept_job._to_dict()))
    # the SDK's dict leaves out the job's identity (its name, names and tags)
    document = {"name": job.name, "display_name": job.display_name, "experiment_name": job.experiment_name, "tags": job.tags, **document}
    # it writes the trial as a whole component; a sweep job's trial takes these
    document["trial"] = {k: v for k, v in document["trial"].items()
                         if k in ("command", "code", "environment", "environment_variables", "resources", "distribution") and v not in ({}, None)}
    if isinstance(document["trial"].get("environment"), dict):  # an inline image: no anonymous name/version
        document["trial"]["environment"] = {"image": document["trial"]["environment"]["image"]}
    inputs = {k: v for k, v in (document.get("inputs") or {}).items() if k not in sweep.parameters}
    azureml_job.restore_input_paths(inputs, plan)  # the SDK writes local paths and URLs as azureml:<path>
    document["inputs"] = inputs
    return {"$schema": azureml_sweep.SCHEMA, **{k: v for k, v in document.items() if v not in ({}, None)}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_sweep_document_is_the_one_the_sdk_writes(case: str) -> None:
    compared = []
    for variant, overrides in VARIANTS.items():
        try:
            plan = plan_of(CASES[case], overrides)
        except CloudtrainError:
            continue  # the spec refuses this variant
        for kind, section in SWEEPS.items():
            sweep = Sweep.model_validate(section)
            try:
                expected = sdk_sweep_document(plan, sweep)
            except SpecError as error:  # no environment: both builders refuse alike
                with pytest.raises(SpecError) as caught:
                    azureml_sweep.sweep_document(plan, sweep)
                assert caught.value.message == error.message, (variant, kind)
                continue
            document = azureml_sweep.sweep_document(plan, sweep)
            assert json.dumps(document) == json.dumps(expected), (variant, kind)  # the same keys in the same order
            azureml_job.validate_document(document, kind="sweep")
            compared.append((variant, kind))
    assert ("as is", "tpe") in compared and len(compared) >= len(VARIANTS) * len(SWEEPS) // 2, compared


def test_the_corpus_covers_every_sweep_document_shape() -> None:
    top: set[str] = set()
    trial: set[str] = set()
    for case in CASES:
        for overrides in VARIANTS.values():
            for section in SWEEPS.values():
                try:
                    document = azureml_sweep.sweep_document(plan_of(CASES[case], overrides), Sweep.model_validate(section))
                except CloudtrainError:
                    continue
                top |= set(document)
                trial |= set(document["trial"])
    assert top >= {"early_termination", "queue_settings", "inputs", "outputs", "compute", "limits"}
    assert trial >= {"distribution", "environment", "environment_variables", "resources"}


def test_natural_log_bounds_and_integer_steps_by_hand() -> None:
    space = azureml_sweep.search_space(Sweep.model_validate(SWEEPS["random, median, every parameter type"]))
    assert space["lr"] == {"type": "loguniform", "min_value": pytest.approx(-9.210340371976184),  # ln(1e-4), by hand
                           "max_value": pytest.approx(-2.302585092994046)}  # ln(0.1)
    assert space["momentum"] == {"type": "uniform", "min_value": 0.1, "max_value": 0.9}
    assert space["epochs"] == {"type": "quniform", "min_value": 2, "max_value": 10, "q": 1}
    assert space["optimizer"] == {"values": ["sgd", "adam"], "type": "choice"}


def test_a_spec_without_hyperparameters_passes_each_trial_its_values_once() -> None:
    plan = plan_of(CASES["custom-image"], [])
    assert not plan.spec.hyperparameters
    command = azureml_sweep.sweep_document(plan, Sweep.model_validate(SWEEPS["tpe"]))["trial"]["command"]
    assert command.count("--hps ") == 1
    assert "--hps '{\"lr\": ${{search_space.lr}}, \"width\": ${{search_space.width}}}' -- python" in command


def test_a_hyphenated_parameter_is_named_with_an_underscore_in_the_search_space_only() -> None:
    """Azure ML's search space names take letters, digits and underscores (load_job refuses
    ``batch-size``); the script still gets ``--batch-size`` (the --hps JSON keeps its name)."""
    sweep = Sweep.model_validate({**SWEEPS["grid, minimize"], "parameters": {"batch-size": {"type": "categorical", "values": [32, 64]}}})
    document = azureml_sweep.sweep_document(golden_plan(), sweep)
    assert document["search_space"] == {"batch_size": {"values": [32, 64], "type": "choice"}}
    assert '"batch-size": ${{search_space.batch_size}}' in document["trial"]["command"]
    assert not sdk_refuses(document) and schema_refuses(document) is None
    unmapped = copy.deepcopy(document)
    unmapped["search_space"] = {"batch-size": unmapped["search_space"]["batch_size"]}
    assert sdk_refuses(unmapped)  # what the name mapping avoids
    clash = Sweep.model_validate({**SWEEPS["grid, minimize"], "parameters": {"batch-size": {"type": "categorical", "values": [32]},
                                                                              "batch_size": {"type": "categorical", "values": [64]}}})
    with pytest.raises(CloudtrainError, match="batch-size and batch_size are both batch_size"):
        azureml_sweep.sweep_document(golden_plan(), clash)


def sweep_for_mutation() -> dict[str, Any]:
    return azureml_sweep.sweep_document(golden_plan(), Sweep.model_validate(SWEEPS["random, median, every parameter type"]))


def sdk_refuses(document: dict[str, Any]) -> bool:
    try:
        azureml_sweep.validate_yaml(document)
    except SpecError:
        return True
    return False


def schema_refuses(document: dict[str, Any]) -> str | None:
    try:
        azureml_job.validate_document(document, kind="sweep")
    except SpecError as error:
        return error.message
    return None


MUTATIONS = {
    "an unknown top-level key": (lambda d: d.update(retries=3), "retries"),
    "a sampling algorithm Azure ML lacks": (lambda d: d.update(sampling_algorithm="annealing"), "sampling_algorithm"),
    "a distribution Azure ML lacks": (lambda d: d["search_space"].update(lr={"type": "beta", "alpha": 1}), "search_space.lr"),
    "a goal that is neither": (lambda d: d["objective"].update(goal="best"), "objective.goal"),
    "a policy Azure ML lacks": (lambda d: d["early_termination"].update(type="patience"), "early_termination"),
    "a trial count that is not a number": (lambda d: d["limits"].update(max_total_trials="eight"), "limits.max_total_trials"),
    "an unknown trial key": (lambda d: d["trial"].update(retries=3), "trial"),
    "a trial without a command": (lambda d: d["trial"].pop("command"), "trial"),
    "a trial count in the resources that is not a number": (lambda d: d["trial"]["resources"].update(instance_count="two"),
                                                           "trial.resources.instance_count"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_sweep_schema_refuses_what_the_sdk_refuses_naming_the_field(mutation: str) -> None:
    change, field = MUTATIONS[mutation]
    document = copy.deepcopy(sweep_for_mutation())
    change(document)
    assert sdk_refuses(document), "the SDK accepts this mutation: it proves nothing here"
    message = schema_refuses(document)
    assert message is not None and field in message, message


def test_the_sweep_schema_accepts_what_the_sdk_accepts() -> None:
    document = sweep_for_mutation()
    assert not sdk_refuses(document) and schema_refuses(document) is None


def test_a_sweep_dry_run_does_not_import_the_sdk(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\n"
            "from cloudtrain.api import Job\n"
            "from cloudtrain.sweeps import cloud\n"
            f"job = Job.from_file({str(EXAMPLES / 'digits-cnn-sweep.yaml')!r}, {{'azureml.subscription_id': 's', "
            "'azureml.resource_group': 'rg', 'azureml.workspace': 'ws', 'sweep.algorithm': 'random'})\n"
            "request = cloud.render(job._loaded, 'azureml', job.runner)\n"
            "print(request.payload['type'], 'azure.ai.ml' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["sweep", "False"]
