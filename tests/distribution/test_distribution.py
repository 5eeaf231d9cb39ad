"""Every distribution kind launched for real (local executor, emulators) with each rank's
environment recorded; the rendered requests checked with the clouds' SDKs; refusals at plan time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backends import run_job, write_project
from recorder import RECORDER, records

from cloudtrain.errors import CloudtrainError
from cloudtrain.providers.base import JobState
from cloudtrain.runner import Runner
from cloudtrain.specfile import load_spec

needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None, reason="OpenMPI's mpirun is not installed (.ci/run installs it)")
SAGEMAKER = "sagemaker: {region: us-east-1, role_arn: 'arn:aws:iam::123456789012:role/Train', bucket: ct-bucket}\n"
AZUREML = "azureml: {subscription_id: 00000000-0000-0000-0000-000000000000, resource_group: rg, workspace: ws}\n"
VERTEX = "vertex: {project: p, location: us-central1, staging_bucket: gs://b}\n"


def project(tmp_path: Path, resources: str, distribution: str, extra: str = "") -> tuple[Path, Path]:
    record_dir = tmp_path / "records"
    spec = write_project(tmp_path / "proj", RECORDER,
                         f"name: rec\ncode: .\nentrypoint: train.py\nframework: {{name: pytorch}}\nargs: ['{record_dir}']\n"
                         f"resources: {resources}\ndistribution: {distribution}\n{extra}")
    return spec, record_dir


def ranks(record_dir: Path) -> list[tuple]:
    return [(r["rank"], r["world_size"], r["local_rank"], r["node_rank"], r["task_type"]) for r in records(record_dir)]


# -- the local executor ---------------------------------------------------------------------------

def run_local(spec: Path) -> str:
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(spec), "local"))
    log = (Path(record.details["run_dir"]) / "logs" / "job.log").read_text()
    assert status.state is JobState.SUCCEEDED, log
    return log


@needs_mpirun
def test_local_mpi_two_nodes_of_two(tmp_path: Path) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", "{type: mpi, processes_per_node: 2}")
    run_local(spec)
    assert ranks(out) == [(0, 4, 0, 0, None), (1, 4, 1, 0, None), (2, 4, 0, 1, None), (3, 4, 1, 1, None)]
    assert all(r["env"]["OMPI_COMM_WORLD_SIZE"] == "4" for r in records(out))


def test_local_tensorflow_workers_and_a_parameter_server(tmp_path: Path) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", "{type: tensorflow, parameter_servers: 1}")
    run_local(spec)
    found = records(out)
    assert ranks(out) == [(0, 2, 0, 0, "worker"), (1, 2, 0, 1, "worker"), (2, 2, 0, 0, "ps")]
    configs = [json.loads(r["env"]["TF_CONFIG"]) for r in found]
    assert all(len(c["cluster"]["worker"]) == 2 and len(c["cluster"]["ps"]) == 1 for c in configs)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}, {"type": "ps", "index": 0}]
    assert found[0]["is_main"] and not found[2]["is_main"]


def test_local_torchrun_two_nodes_of_two(tmp_path: Path) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", "{type: torchrun, processes_per_node: 2}")
    run_local(spec)
    assert ranks(out) == [(0, 4, 0, 0, None), (1, 4, 1, 0, None), (2, 4, 0, 1, None), (3, 4, 1, 1, None)]
    assert {r["env"]["MASTER_ADDR"] for r in records(out)} == {"127.0.0.1"}


def test_local_deepspeed_runs_under_torchrun(tmp_path: Path) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", "{type: deepspeed, processes_per_node: 2}")
    run_local(spec)
    assert ranks(out) == [(0, 4, 0, 0, None), (1, 4, 1, 0, None), (2, 4, 0, 1, None), (3, 4, 1, 1, None)]


# -- the emulators --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, cloud", [("torchrun", "vertex"), ("torchrun", "azureml"), ("deepspeed", "vertex"),
                                         ("deepspeed", "azureml")])
def test_emulated_torchrun_and_deepspeed_two_nodes_of_two(kind: str, cloud: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", f"{{type: {kind}, processes_per_node: 2}}")
    status, logs = run_job(cloud, spec, tmp_path, monkeypatch)
    assert status.state is JobState.SUCCEEDED, logs
    assert ranks(out) == [(0, 4, 0, 0, None), (1, 4, 1, 0, None), (2, 4, 0, 1, None), (3, 4, 1, 1, None)]
    assert len({r["env"]["MASTER_ADDR"] for r in records(out)}) == 1  # one rendezvous for both nodes


def test_sagemaker_deepspeed_starts_one_rank_per_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = project(tmp_path, "{nodes: 2, instance_type: {sagemaker: ml.g5.12xlarge}}", "{type: deepspeed}")
    status, logs = run_job("sagemaker", spec, tmp_path, monkeypatch)
    assert status.state is JobState.SUCCEEDED, logs
    assert ranks(out) == [(r, 8, r % 4, r // 4, None) for r in range(8)]


def test_sagemaker_torchrun_on_two_p4d_starts_sixteen_ranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = project(tmp_path, "{nodes: 2, instance_type: {sagemaker: ml.p4d.24xlarge}}", "{type: torchrun}")
    status, logs = run_job("sagemaker", spec, tmp_path, monkeypatch)
    assert status.state is JobState.SUCCEEDED, logs
    assert ranks(out) == [(r, 16, r % 8, r // 8, None) for r in range(16)]
    assert {r["env"]["SM_CURRENT_HOST"] for r in records(out) if r["node_rank"] == 1} == {"algo-2"}


@needs_mpirun
@pytest.mark.parametrize("cloud", ["sagemaker", "azureml"])
def test_emulated_mpi(cloud: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", "{type: mpi, processes_per_node: 2}")
    status, logs = run_job(cloud, spec, tmp_path, monkeypatch)
    assert status.state is JobState.SUCCEEDED, logs
    assert ranks(out) == [(0, 4, 0, 0, None), (1, 4, 1, 0, None), (2, 4, 0, 1, None), (3, 4, 1, 1, None)]


def test_sagemaker_tensorflow_parameter_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", "{type: tensorflow, parameter_servers: 2}")
    status, logs = run_job("sagemaker", spec, tmp_path, monkeypatch)
    assert status.state is JobState.SUCCEEDED, logs
    assert ranks(out) == [(0, 2, 0, 0, "master"), (1, 2, 0, 1, "worker")]
    config = json.loads(records(out)[1]["env"]["TF_CONFIG"])
    assert len(config["cluster"]["ps"]) == 2 and config["task"] == {"index": 0, "type": "worker"}


@pytest.mark.parametrize("cloud", ["vertex", "azureml"])
def test_emulated_tensorflow(cloud: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = project(tmp_path, "{nodes: 2}", "{type: tensorflow, parameter_servers: 1}")
    status, logs = run_job(cloud, spec, tmp_path, monkeypatch)
    assert status.state is JobState.SUCCEEDED, logs
    first = "chief" if cloud == "vertex" else "worker"
    assert ranks(out) == [(0, 2, 0, 0, first), (1, 2, 0, 1, "worker"), (2, 2, 0, ranks(out)[2][3], "ps")]


# -- renders, with the SDKs' own validation -------------------------------------------------------

def plan_for(tmp_path: Path, cloud: str, resources: str, distribution: str, section: str):  # type: ignore[no-untyped-def]
    spec, _ = project(tmp_path, resources, distribution, section)
    runner = Runner()
    plan = runner.plan(load_spec(spec), cloud)
    return plan, runner.render(plan).payload


def test_sagemaker_renders_pass_the_service_model_and_the_sdk_checks(tmp_path: Path) -> None:
    from sagemaker.core import fw_utils

    plan, request = plan_for(tmp_path, "sagemaker", "{nodes: 2}", "{type: mpi, processes_per_node: 4, mpi_options: [-x, NCCL_DEBUG=INFO]}", SAGEMAKER)
    hps = request["HyperParameters"]
    assert (hps["sagemaker_mpi_enabled"], hps["sagemaker_mpi_num_of_processes_per_host"]) == ("true", "4")
    assert hps["sagemaker_mpi_custom_mpi_options"] == "-x NCCL_DEBUG=INFO"
    _, request = plan_for(tmp_path / "ps", "sagemaker", "{nodes: 2}", "{type: tensorflow, parameter_servers: 2}", SAGEMAKER)
    assert request["HyperParameters"]["sagemaker_parameter_server_enabled"] == "true"
    _, request = plan_for(tmp_path / "mw", "sagemaker", "{nodes: 2}", "{type: tensorflow}", SAGEMAKER)
    assert request["HyperParameters"]["sagemaker_multi_worker_mirrored_strategy_enabled"] == "true"
    plan, request = plan_for(tmp_path / "smddp", "sagemaker", "{nodes: 2, instance_type: {sagemaker: ml.p4d.24xlarge}}",
                             "{type: torchrun, smddp: true}", SAGEMAKER)
    assert request["HyperParameters"]["sagemaker_distributed_dataparallel_enabled"] == "true"
    fw_utils.validate_smdistributed(plan.instance_type, "pytorch", "2.2.0", "py310",
                                    {"smdistributed": {"dataparallel": {"enabled": True}}})
    plan, request = plan_for(tmp_path / "torch", "sagemaker", "{nodes: 2, instance_type: {sagemaker: ml.p4d.24xlarge}}", "{type: torchrun}", SAGEMAKER)
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    fw_utils.validate_torch_distributed_distribution(plan.instance_type, {"torch_distributed": {"enabled": True}},
                                                     "2.5.1", "py311", None, "cloudtrain/runtime/entry.py")


def test_azureml_renders_load_as_the_sdks_distributions(tmp_path: Path) -> None:
    from azure.ai.ml import MpiDistribution, TensorFlowDistribution

    from cloudtrain.providers.azureml_job import load_yaml_job

    plan, document = plan_for(tmp_path, "azureml", "{nodes: 2}", "{type: mpi, processes_per_node: 3}", AZUREML)
    job = load_yaml_job(document, plan.spec.code)
    assert isinstance(job.distribution, MpiDistribution) and job.distribution.process_count_per_instance == 3
    plan, document = plan_for(tmp_path / "tf", "azureml", "{nodes: 3}", "{type: tensorflow, parameter_servers: 2}", AZUREML)
    job = load_yaml_job(document, plan.spec.code)
    assert isinstance(job.distribution, TensorFlowDistribution)
    assert (job.distribution.worker_count, job.distribution.parameter_server_count) == (3, 2)


def test_vertex_pools_parse_with_the_sdk(tmp_path: Path) -> None:
    from google.cloud import aiplatform_v1

    from cloudtrain.providers.distribution import REDUCTION_SERVER_IMAGE

    _, request = plan_for(tmp_path, "vertex", "{nodes: 3}", "{type: tensorflow, parameter_servers: 2}", VERTEX)
    job = aiplatform_v1.CustomJob.from_json(json.dumps(request))
    assert [p.replica_count for p in job.job_spec.worker_pool_specs] == [1, 2, 2]
    assert not job.job_spec.worker_pool_specs[2].machine_spec.accelerator_count
    _, request = plan_for(tmp_path / "rs", "vertex", "{nodes: 2, accelerator: 'A100:8'}", "{type: torchrun, reduction_server: {replicas: 4}}", VERTEX)
    pools = aiplatform_v1.CustomJob.from_json(json.dumps(request)).job_spec.worker_pool_specs
    assert pools[2].container_spec.image_uri == REDUCTION_SERVER_IMAGE and pools[2].replica_count == 4
    assert "--nproc_per_node=8" in " ".join(pools[0].container_spec.command)


# -- refused at plan time -------------------------------------------------------------------------

@pytest.mark.parametrize("cloud, resources, distribution, field", [
    ("sagemaker", "{nodes: 2}", "{type: torchrun}", "distribution.type: SageMaker's torch distributed launch"),
    ("sagemaker", "{instance_type: {sagemaker: ml.p4d.24xlarge}}", "{type: torchrun, processes_per_node: 2}", "distribution.processes_per_node"),
    ("sagemaker", "{nodes: 3}", "{type: tensorflow, parameter_servers: 1}", "distribution.parameter_servers"),
    ("sagemaker", "{instance_type: {sagemaker: ml.g5.2xlarge}}", "{type: torchrun, smddp: true}", "distribution.smddp"),
    ("sagemaker", "{accelerator: T4}", "{type: torchrun, reduction_server: {replicas: 1}}", "distribution.reduction_server"),
    ("azureml", "{}", "{type: torchrun, smddp: true}", "distribution.smddp"),
    ("vertex", "{nodes: 2}", "{type: mpi}", "distribution.type: Vertex AI has no MPI"),
    ("vertex", "{}", "{type: torchrun, reduction_server: {replicas: 1}}", "distribution.reduction_server"),
    ("local", "{}", "{type: torchrun, smddp: true}", "distribution.smddp"),
])
def test_unsupported_combinations_are_refused_at_plan_time(cloud: str, resources: str, distribution: str, field: str,
                                                           tmp_path: Path) -> None:
    spec, _ = project(tmp_path, resources, distribution, {"sagemaker": SAGEMAKER, "azureml": AZUREML, "vertex": VERTEX}.get(cloud, ""))
    with pytest.raises(CloudtrainError, match="^" + field.replace(".", r"\.").replace("'", ".")):
        Runner().plan(load_spec(spec), cloud)


@pytest.mark.parametrize("distribution, message", [
    ("{type: torchrun, parameter_servers: 1}", "parameter_servers"),
    ("{type: torchrun, mpi_options: [-v]}", "mpi_options"),
    ("{type: tensorflow, processes_per_node: 2}", "processes_per_node"),
    ("{type: tensorflow, smddp: true}", "smddp"),
])
def test_options_of_another_kind_are_refused_by_the_spec(distribution: str, message: str, tmp_path: Path) -> None:
    spec, _ = project(tmp_path, "{}", distribution)
    with pytest.raises(CloudtrainError, match=message):
        load_spec(spec)


# -- heterogeneous pools --------------------------------------------------------------------------

POOLS = ("{pools: [{name: train, nodes: 2, instance_type: {sagemaker: ml.g5.12xlarge, vertex: g2-standard-48}}, "
         "{name: data, nodes: 1, cpus: 4}]}")


@pytest.mark.parametrize("cloud", ["sagemaker", "vertex"])
def test_pools_run_on_the_emulators_with_each_process_told_its_pool(cloud: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = project(tmp_path, POOLS, "{type: torchrun}")
    status, logs = run_job(cloud, spec, tmp_path, monkeypatch)
    assert status.state is JobState.SUCCEEDED, logs
    found = records(out)
    training = [(r["rank"], r["world_size"], r["local_rank"], r["node_rank"]) for r in found if r["pool"] == "train"]
    assert training == [(r, 8, r % 4, r // 4) for r in range(8)]  # 2 nodes x the 4 GPUs of the machine
    assert [r["pool"] for r in found].count("data") == 1  # the data pool's node runs the script once, plainly


def test_pools_render_as_instance_groups_and_worker_pools(tmp_path: Path) -> None:
    from google.cloud import aiplatform_v1
    from sagemaker.core import fw_utils
    from sagemaker.core.instance_group import InstanceGroup

    plan, request = plan_for(tmp_path, "sagemaker", POOLS, "{type: torchrun}", SAGEMAKER)
    groups = request["ResourceConfig"]["InstanceGroups"]
    assert [(g["InstanceGroupName"], g["InstanceCount"]) for g in groups] == [("train", 2), ("data", 1)]
    assert groups[0]["InstanceType"] == "ml.g5.12xlarge" and "InstanceType" not in request["ResourceConfig"]
    assert json.loads(request["HyperParameters"]["sagemaker_distribution_instance_groups"]) == ["train"]
    sdk_groups = [InstanceGroup(g["InstanceGroupName"], g["InstanceType"], g["InstanceCount"]) for g in groups]
    validated = fw_utils.validate_distribution({"torch_distributed": {"enabled": True}, "instance_groups": sdk_groups[:1]},
                                               sdk_groups, "pytorch", "2.5.1", "py311", None, {"entry_point": "entry.py"})
    assert validated["instance_groups"] == ["train"]
    _, request = plan_for(tmp_path / "vx", "vertex", POOLS, "{type: torchrun}", VERTEX)
    pools = aiplatform_v1.CustomJob.from_json(json.dumps(request)).job_spec.worker_pool_specs
    assert [p.replica_count for p in pools] == [1, 1, 1]
    assert pools[0].machine_spec.machine_type == "g2-standard-48" and pools[2].machine_spec.machine_type != "g2-standard-48"
    assert "torchrun --nnodes=2" in pools[1].container_spec.command[-1] and "torchrun" not in pools[2].container_spec.command[-1]
    assert {e.name: e.value for e in pools[2].container_spec.env}["CLOUDTRAIN_POOL"] == "data"


@pytest.mark.parametrize("cloud", ["azureml", "local"])
def test_pools_are_refused_where_there_are_none(cloud: str, tmp_path: Path) -> None:
    spec, _ = project(tmp_path, POOLS, "{type: torchrun}", AZUREML if cloud == "azureml" else "")
    with pytest.raises(CloudtrainError, match="^resources.pools: the"):
        Runner().plan(load_spec(spec), cloud)


def test_pools_and_the_single_kind_fields_do_not_mix(tmp_path: Path) -> None:
    spec, _ = project(tmp_path, "{nodes: 2, pools: [{name: a}]}", "{type: torchrun}")
    with pytest.raises(CloudtrainError, match="nodes per pool"):
        load_spec(spec)
