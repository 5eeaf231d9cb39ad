"""The Azure ML job document is built without the SDK (``azureml_job.job_document``) and checked
against the SDK's exported schema (``validate_document``), so a dry run does not import azure-ai-ml.
Here the SDK stays the judge:

- the document is exactly what the SDK's own ``command(...)`` entity dumps (``_to_job()._to_dict()``),
  for every Azure ML spec the tests render and for variants of each field;
- the exported schema accepts what the SDK's ``load_job`` accepts, and refuses what it refuses.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.ai.ml")

from test_golden_requests import AZUREML_WORKSPACE, FIXED, catalog_for, spec_files  # noqa: E402

from cloudtrain.errors import CloudtrainError, SpecError  # noqa: E402
from cloudtrain.plan import Plan, make_plan  # noqa: E402
from cloudtrain.providers import azureml_job  # noqa: E402
from cloudtrain.providers.registry import get_provider  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DATA = "azureml://datastores/workspaceblobstore/paths/datasets/digits/train/"


def sdk_document(plan: Plan) -> dict[str, Any]:
    """The job as the SDK writes it: its ``command(...)`` entity, dumped, as the provider built it
    before it built the document itself."""
    from azure.ai.ml import Input, MpiDistribution, Output, PyTorchDistribution, TensorFlowDistribution, command
    from azure.ai.ml.entities import Environment, JobResourceConfiguration, QueueSettings

    spec, settings = plan.spec, plan.settings
    environment = azureml_job.environment(plan)
    if isinstance(environment, dict):
        environment = Environment(image=environment["image"])
    inputs = {name: Input(type="uri_file" if item.file_name else "uri_folder", path=item.uri,
                          **({"mode": azureml_job.INPUT_MODES[item.mode]} if item.mode in azureml_job.INPUT_MODES else {}))
              for name, item in spec.inputs.items()}
    outputs = {}
    for name in azureml_job.output_names(plan):
        uri = azureml_job.output_location(plan, name)
        outputs[name] = Output(type="uri_folder", path=uri, mode="rw_mount") if uri else Output(type="uri_folder")
    kwargs: dict[str, Any] = dict(
        name=plan.job_name, display_name=spec.name, experiment_name=settings.get("experiment") or spec.name,
        tags={**spec.tags, "cloudtrain:job": spec.name, "cloudtrain:submission": plan.submission_token},
        code=spec.code, command=azureml_job.command_line(plan), environment=environment,
        environment_variables=azureml_job.environment_variables(plan), inputs=inputs, outputs=outputs,
        instance_count=plan.nodes, resources=JobResourceConfiguration(**azureml_job.resources(plan)))
    if settings.get("compute"):
        kwargs["compute"] = f"azureml:{settings['compute']}"
    kind = spec.distribution.type
    if kind in ("torchrun", "deepspeed"):
        kwargs["distribution"] = PyTorchDistribution(process_count_per_instance=plan.processes_per_node)
    elif kind == "mpi":
        kwargs["distribution"] = MpiDistribution(process_count_per_instance=plan.processes_per_node)
    elif kind == "tensorflow":
        kwargs["distribution"] = TensorFlowDistribution(worker_count=plan.nodes, parameter_server_count=spec.distribution.parameter_servers)
    if plan.max_runtime_seconds:
        kwargs["timeout"] = plan.max_runtime_seconds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if plan.spot:
            kwargs["queue_settings"] = QueueSettings(job_tier="spot")
        document = json.loads(json.dumps(command(**kwargs)._to_job()._to_dict()))
    if isinstance(document.get("environment"), dict):  # an inline image: no anonymous name/version
        document["environment"] = {"image": document["environment"]["image"]}
    for key in ("properties", "parameters", "inputs", "outputs"):
        if not document.get(key):
            document.pop(key, None)
    if not document.get("resources", {}).get("properties"):
        document.get("resources", {}).pop("properties", None)
    azureml_job.restore_input_paths(document.get("inputs") or {}, plan)  # the SDK writes them as azureml:<path>
    return {"$schema": azureml_job.SCHEMA, **document}


CASES = {case: path for case, path in spec_files("azureml").items()}
CASES.update({f"example-{path.stem}": path for path in sorted(EXAMPLES.glob("*.yaml"))})
VARIANTS = {
    "as is": [],
    "mpi": ["distribution.type=mpi", "resources.nodes=2"],
    "tensorflow with a parameter server": ["distribution.type=tensorflow", "distribution.parameter_servers=1", "resources.nodes=2"],
    "deepspeed": ["distribution.type=deepspeed"],
    "inputs with modes, outputs and checkpoints at URIs": [
        f"inputs.train={{uri: {DATA}, mode: mount}}", "inputs.extra={uri: https://example.com/data/x.csv, mode: download}",
        "inputs.blob=wasbs://container@account.blob.core.windows.net/data/", "outputs.report.uri=azureml://datastores/x/paths/r/",
        "checkpoint.uri=azureml://datastores/x/paths/ck/"],
    "a curated environment by name": ["image=azureml:AzureML-lightgbm-3.3@latest"],
    "an image for Azure ML alone": ["image={azureml: myregistry.azurecr.io/train:1, vertex: gcr.io/p/t:1}"],
    "spot on a cluster, an experiment, tags": ["spot.enabled=true", "azureml.compute=gpu-cluster", "azureml.experiment=exp",
                                               "tags={team: vision}", "max_runtime=90m"],
    "a shell command": ["entrypoint=null", "command=bash run.sh --epochs 3"],
}


def plan_of(path: Path, overrides: list[str]) -> Plan:
    spec = load_spec(path, [*AZUREML_WORKSPACE, *overrides], check_files=False).spec
    plan = make_plan(spec, "azureml", catalog=catalog_for("azureml"), **FIXED)
    get_provider("azureml").check(plan)
    return plan


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_document_is_the_one_the_sdk_writes(case: str) -> None:
    compared = []
    for variant, overrides in VARIANTS.items():
        try:
            plan = plan_of(CASES[case], overrides)
        except CloudtrainError:
            continue  # the spec refuses this variant (tests elsewhere check refusals)
        try:
            expected = sdk_document(plan)
        except SpecError as error:  # no environment: both builders refuse alike
            with pytest.raises(SpecError) as caught:
                azureml_job.job_document(plan)
            assert caught.value.message == error.message, variant
            compared.append(variant)
            continue
        document = azureml_job.job_document(plan)
        assert json.dumps(document) == json.dumps(expected), variant  # the same keys in the same order
        azureml_job.validate_document(document)
        compared.append(variant)
    assert "as is" in compared and len(compared) >= len(VARIANTS) // 2, compared


def test_the_corpus_covers_every_document_shape() -> None:
    """The variants above reach each field the builder can write (else the comparison proves little)."""
    keys: set[str] = set()
    for case in CASES:
        for overrides in VARIANTS.values():
            try:
                keys |= set(azureml_job.job_document(plan_of(CASES[case], overrides)))
            except CloudtrainError:
                continue
    assert keys >= {"compute", "distribution", "queue_settings", "limits", "inputs", "outputs", "environment", "tags"}


def golden_plan() -> Plan:
    return plan_of(CASES["multinode-spot"], [f"inputs.train={{uri: {DATA}, mode: mount}}"])


def sdk_refuses(document: dict[str, Any]) -> bool:
    try:
        azureml_job.load_yaml_job(document)
    except SpecError:
        return True
    return False


def schema_refuses(document: dict[str, Any]) -> str | None:
    try:
        azureml_job.validate_document(document)
    except SpecError as error:
        return error.message
    return None


MUTATIONS = {
    "an unknown top-level key": (lambda d: d.update(retries=3), "retries"),
    "an unknown resources key": (lambda d: d["resources"].update(gpus=2), "resources"),
    "a count that is not a number": (lambda d: d["resources"].update(instance_count="two"), "resources.instance_count"),
    "a timeout that is not a number": (lambda d: d["limits"].update(timeout="2h"), "limits.timeout"),
    "a job tier Azure ML lacks": (lambda d: d["queue_settings"].update(job_tier="cheap"), "queue_settings.job_tier"),
    "a distribution Azure ML lacks": (lambda d: d.update(distribution={"type": "horovod"}), "distribution"),
    "an input type Azure ML lacks": (lambda d: d["inputs"]["train"].update(type="s3_folder"), "inputs.train"),
    "an environment that is a number": (lambda d: d.update(environment=5), "environment"),
    "no command": (lambda d: d.pop("command"), "command"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_schema_refuses_what_the_sdk_refuses_naming_the_field(mutation: str) -> None:
    change, field = MUTATIONS[mutation]
    document = copy.deepcopy(azureml_job.job_document(golden_plan()))
    change(document)
    assert sdk_refuses(document), "the SDK accepts this mutation: it proves nothing here"
    message = schema_refuses(document)
    assert message is not None and field in message, message


def test_the_schema_accepts_what_the_sdk_accepts() -> None:
    document = azureml_job.job_document(golden_plan())
    assert not sdk_refuses(document) and schema_refuses(document) is None


def test_a_dry_run_does_not_import_the_sdk(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\n"
            "from cloudtrain.api import Job\n"
            f"job = Job.from_file({str(EXAMPLES / 'digits-cnn.yaml')!r}, {{'azureml.subscription_id': 's', 'azureml.resource_group': 'rg', 'azureml.workspace': 'ws'}})\n"
            "request = job.dry_run('azureml')\n"
            "print(request.payload['type'], 'azure.ai.ml' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["command", "False"]


ACCEPTED = {
    "environment": ["azureml:myenv:3", "azureml:myenv@latest", "azureml:AzureML-sklearn-1.5@latest",
                    "azureml:/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/environments/e/versions/1",
                    "azureml://registries/azureml/environments/sklearn-1.5/labels/latest", {"image": "myregistry.azurecr.io/train:1"}],
    "input path": ["https://account.blob.core.windows.net/container/data/", "wasbs://container@account.blob.core.windows.net/data/",
                   "abfss://container@account.dfs.core.windows.net/data/", "azureml:mydata:1", "azureml:mydata@latest", "/tmp/local-data"],
}


@pytest.mark.parametrize("field, value", [(field, value) for field, values in ACCEPTED.items() for value in values])
def test_the_schema_accepts_the_names_and_locations_the_sdk_accepts(field: str, value: Any) -> None:
    document = copy.deepcopy(azureml_job.job_document(golden_plan()))
    if field == "environment":
        document["environment"] = value
    else:
        document["inputs"]["train"]["path"] = value
    assert not sdk_refuses(document)
    assert schema_refuses(document) is None
