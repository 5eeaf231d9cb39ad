"""Distribution kinds across backends: what each cloud can start, and the launch pieces they share.

``distribution.type`` (:class:`cloudtrain.spec.Distribution`) names how a job's processes start:

============  ==============================================================================
torchrun      ``torch.distributed.run``: ``processes_per_node`` per node (one per GPU by default),
              ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT``.
mpi           ``mpirun`` (Horovod-style): ``processes_per_node`` per host, ``OMPI_COMM_WORLD_*``.
tensorflow    one process per node with ``TF_CONFIG`` naming every worker (MultiWorkerMirrored) and
              ``parameter_servers`` ps tasks, and the process's own task.
deepspeed     DeepSpeed scripts under torchrun: every cloud here prefers it (SageMaker's and Vertex's
              PyTorch launch, Azure ML's PyTorch distribution), and ``deepspeed.init_distributed``
              reads the torchrun variables. The ``deepspeed`` launcher with a hostfile needs ssh
              between nodes, which none of these jobs set up; it is not used.
============  ==============================================================================

Where a cloud cannot do a combination, :func:`check_distribution` refuses it at plan time, naming
the spec field. The matrix (✓ supported, ✗ refused):

=====================  =====  =========  =======  ======
                       local  sagemaker  azureml  vertex
=====================  =====  =========  =======  ======
torchrun               ✓      ✓ GPU      ✓        ✓
mpi                    ✓      ✓          ✓        ✗
tensorflow             ✓      ✓ [1]      ✓        ✓
deepspeed (torchrun)   ✓      ✓ GPU      ✓        ✓
smddp                  ✗      ✓ [2]      ✗        ✗
reduction_server       ✗      ✗          ✗        ✓
=====================  =====  =========  =======  ======

[1] SageMaker's parameter-server option starts one ps task on every host: ``parameter_servers``
is 0 or the number of nodes there. [2] On the instance types of the SageMaker SDK's
``SM_DATAPARALLEL_SUPPORTED_INSTANCE_TYPES``. SageMaker's torch distributed launch starts one process
per GPU and refuses CPU instances (the SDK's ``validate_torch_distributed_distribution``);
``processes_per_node`` other than the instance's GPU count is refused there. Vertex AI has no MPI
launch of its own (its replicas would need ssh between them): ``mpi`` is refused there.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import TYPE_CHECKING

from cloudtrain.errors import SpecError, UnsupportedFeatureError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

#: SageMaker's data-parallel library's instance types: the sagemaker SDK's own list
#: (``sagemaker.core.fw_utils.SM_DATAPARALLEL_SUPPORTED_INSTANCE_TYPES``, SDK 3.27), without ``local_gpu``.
SMDDP_INSTANCE_TYPES = ("ml.p3.16xlarge", "ml.p3dn.24xlarge", "ml.p4d.24xlarge", "ml.p4de.24xlarge")
#: Vertex AI's reduction server image (https://cloud.google.com/vertex-ai/docs/training/distributed-training#reduction-server).
REDUCTION_SERVER_IMAGE = "us-docker.pkg.dev/vertex-ai-restricted/training/reductionserver:latest"
#: mpirun options every local and emulated launch adds: ranks may outnumber cores (--oversubscribe)
#: and are not pinned to cores (--bind-to none), as on a laptop or a 2-core CI runner.
MPIRUN_LOCAL_OPTIONS = ("--oversubscribe", "--bind-to", "none")
#: Variables that let OpenMPI's mpirun run as root (containers, CI) besides --allow-run-as-root.
MPI_ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def _refuse(field: str, message: str, hint: str) -> None:
    raise UnsupportedFeatureError(f"distribution.{field}: {message}", hint)


def torch_launch(kind: str) -> bool:
    """Whether the kind is started with torchrun (torchrun itself, and deepspeed)."""
    return kind in ("torchrun", "deepspeed")


def check_distribution(plan: "Plan", cloud: str) -> None:
    """Refuse, at plan time, what ``cloud`` cannot launch (see the module docstring's matrix)."""
    dist = plan.spec.distribution
    if dist.smddp and cloud != "sagemaker":
        _refuse("smddp", f"SageMaker's data-parallel library exists only on SageMaker, not on {cloud}", "remove distribution.smddp")
    if dist.reduction_server and cloud != "vertex":
        _refuse("reduction_server", f"Vertex AI's reduction server exists only on Vertex AI, not on {cloud}",
                "remove distribution.reduction_server")
    if plan.spec.resources.pools and cloud not in ("sagemaker", "vertex"):
        raise UnsupportedFeatureError(f"resources.pools: the {cloud} backend runs one kind of node (it has no instance "
                                      "groups or worker pools)", "give resources.nodes/accelerator instead, or run on SageMaker or Vertex AI")
    if cloud == "vertex" and len(plan.spec.resources.pools) > 3:
        _refuse_pools = "Vertex AI has four worker pools: the first pool takes pools 0 and 1, the others 2 and 3"
        raise UnsupportedFeatureError(f"resources.pools: {len(plan.spec.resources.pools)} pools; {_refuse_pools}", "give at most 3 pools")
    if cloud == "vertex" and len(plan.spec.resources.pools) > 1 and (dist.parameter_servers or dist.reduction_server):
        raise UnsupportedFeatureError("resources.pools: Vertex AI's pool 2 holds either a second pool or the ps/reduction servers",
                                      "remove the second pool, or distribution.parameter_servers / reduction_server")
    if cloud == "local" and dist.type == "mpi" and shutil.which("mpirun") is None:
        raise SpecError("distribution.type: mpi needs OpenMPI's mpirun on this machine, and there is none on PATH",
                        "install it (apt-get install -y openmpi-bin libopenmpi-dev) or use type: torchrun")
    if cloud == "sagemaker":
        _check_sagemaker(plan)
    elif cloud == "vertex":
        if dist.type == "mpi":
            _refuse("type", "Vertex AI has no MPI launch (its replicas have no ssh between them)",
                    "use type: torchrun or tensorflow on Vertex AI, or run the MPI job on SageMaker or Azure ML")
        if dist.reduction_server and plan.offer is not None and not plan.offer.has_accelerator:
            _refuse("reduction_server", "the reduction server all-reduces GPU workers' gradients; this job has no GPU",
                    "ask for an accelerator (resources.accelerator), or remove distribution.reduction_server")


def _check_sagemaker(plan: "Plan") -> None:
    dist, offer = plan.spec.distribution, plan.offer
    gpus = offer.accelerator_count if offer is not None and offer.has_accelerator else 0
    if torch_launch(dist.type):
        if offer is not None and not gpus and not (plan.instance_type or "").startswith("ml.trn"):
            _refuse("type", f"SageMaker's torch distributed launch runs on GPU and Trainium instances only, not "
                            f"{plan.instance_type} (the SageMaker SDK refuses it too)",
                    "ask for an accelerator (resources.accelerator), or use type: mpi on CPU instances")
        if offer is not None and gpus and dist.processes_per_node not in ("auto", gpus):
            _refuse("processes_per_node", f"SageMaker's torch distributed launch starts one process per GPU "
                                          f"({gpus} on {plan.instance_type}), not {dist.processes_per_node}",
                    "set processes_per_node: auto, or use type: mpi for another count per host")
    if dist.type == "tensorflow" and dist.parameter_servers not in (0, plan.nodes):
        _refuse("parameter_servers", f"SageMaker's parameter-server option runs one ps task on every host "
                                     f"({plan.nodes}), not {dist.parameter_servers}",
                f"set parameter_servers: {plan.nodes} (or 0 for MultiWorkerMirrored)")
    if dist.type == "tensorflow" and dist.parameter_servers and plan.nodes < 2:
        _refuse("parameter_servers", "SageMaker's parameter-server option needs at least two hosts",
                "set resources.nodes: 2 or more, or parameter_servers: 0")
    if dist.smddp and plan.instance_type and plan.instance_type not in SMDDP_INSTANCE_TYPES:
        _refuse("smddp", f"SageMaker's data-parallel library runs on {', '.join(SMDDP_INSTANCE_TYPES)} only, not "
                         f"{plan.instance_type} (the SageMaker SDK's own list)",
                "set resources.instance_type: {sagemaker: ml.p4d.24xlarge}, or remove distribution.smddp")


def training_nodes(plan: "Plan") -> int:
    """The nodes that run the distributed training: the first pool's with ``resources.pools``."""
    return plan.pools[0][1] if plan.pools else plan.nodes


def distribution_environment(plan: "Plan") -> dict[str, str]:
    """What every cloud job's processes read about its distribution (the runtime context uses the
    processes per node to place MPI ranks on nodes)."""
    kind = plan.spec.distribution.type
    if kind == "none":
        return {}
    return {"CLOUDTRAIN_DISTRIBUTION": kind, "CLOUDTRAIN_PROCESSES_PER_NODE": str(plan.processes_per_node)}


def mpirun_local(processes: int, options: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``mpirun`` starting ``processes`` ranks on this machine (root allowed, oversubscribed)."""
    root = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return ["mpirun", *root, *MPIRUN_LOCAL_OPTIONS, "-np", str(processes), *options]


def tf_config(cluster: dict[str, list[str]], task_type: str, index: int, **extra: object) -> str:
    """``TF_CONFIG`` as TensorFlow reads it: the cluster's tasks by type, and this process's task."""
    return json.dumps({"cluster": {k: v for k, v in cluster.items() if v}, "task": {"type": task_type, "index": index}, **extra})


def tf_tasks(workers: int, parameter_servers: int) -> list[tuple[str, int]]:
    """(task type, index) of every TensorFlow task: the workers, then the ps tasks."""
    return [("worker", i) for i in range(workers)] + [("ps", i) for i in range(parameter_servers)]
