"""Building and validating the Vertex AI ``CustomJob`` (pure: no network, no upload).

The request is the CustomJob resource in its REST JSON form: what ``CustomJob.to_json`` gives, what
``POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/customJobs``
and ``gcloud ai custom-jobs create --config`` accept (proto JSON field names, camelCase).

Layout in the staging bucket (``vertex.staging_bucket`` is ``gs://bucket[/prefix]``; the prefix
defaults to ``cloudtrain``), with ``<base>`` = ``gs://<bucket>/<prefix>/<job name>``:

- ``<base>/staging/code.tar.gz``: the code bundle (:mod:`cloudtrain.providers.bundle`);
- ``<base>/staging/inputs/<name>/``: local inputs;
- ``<base>/`` is the job's ``baseOutputDirectory``, from which Vertex sets ``AIP_MODEL_DIR``
  (``<base>/model/``), ``AIP_CHECKPOINT_DIR`` (``<base>/checkpoints/``) and
  ``AIP_TENSORBOARD_LOG_DIR`` (``<base>/logs/``);
- ``<base>/cloudtrain-logs/job.log``: the job's log as the emulator writes it (see
  :mod:`cloudtrain.providers.vertex`).

Worker pools: pool 0 is the primary replica (one), pool 1 the other ``nodes - 1`` replicas, all on
the same machine; ``distribution.type: tensorflow`` with ``parameter_servers: N`` adds pool 2 with N
ps replicas (the same machine without its accelerators), and Vertex's ``TF_CONFIG`` names pool 0
``chief``, pool 1 ``worker`` and pool 2 ``ps``; ``distribution.reduction_server: {replicas: N}`` makes
pool 2 N reduction servers (Vertex's reduction server image on ``machine_type``). ``deepspeed``
runs under torchrun as ``torchrun`` does. Each replica runs the framework's prebuilt training image (or the spec's
``image``) with a ``bash -c`` command that unpacks the code bundle read through the Cloud Storage
FUSE mount (``/gcs/<bucket>/...``; ``CLOUDTRAIN_GCS_MOUNT`` overrides the mount point, which the
emulator uses) and runs cloudtrain's entry shim, under ``torchrun`` when the distribution asks for
it (node rank, master address and port from the ``RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT`` that
Vertex sets for PyTorch images). Everything the entrypoint needs is in the container's env:
``CLOUDTRAIN_ENTRYPOINT`` or ``CLOUDTRAIN_MODULE``, ``CLOUDTRAIN_ARGS``, ``CLOUDTRAIN_HPS``,
``CLOUDTRAIN_INPUTS`` (name -> ``gs://`` URI, read through the mount), ``CLOUDTRAIN_SECRETS``.

Decisions: the checkpoint directory is always ``AIP_CHECKPOINT_DIR`` (``checkpoint.dir`` is not
used on Vertex); ``metrics`` are printed by ``log_metric`` but Vertex custom jobs have no metric
definitions; spot jobs use ``strategy: SPOT`` with ``maxWaitDuration`` from ``spot.max_wait``;
without ``max_runtime`` Vertex's default timeout (7 days) applies. The machine's accelerator comes
from the catalog's instance type: ``n1-standard-8+NVIDIA_TESLA_T4x1`` (attached GPUs) or a machine
type with bundled GPUs (``a2-highgpu-1g``), whose accelerator is named from the offer's neutral
name; accelerator names are checked against ``aiplatform_v1.AcceleratorType`` (from the SDK's
descriptors, :mod:`cloudtrain.providers.vertex_proto`).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

DEFAULT_PREFIX = "cloudtrain"
SUBMISSION_LABEL = "cloudtrain-submission"
JOB_LABEL = "cloudtrain-job"
#: Neutral accelerator name -> Vertex ``AcceleratorType`` (for machine types with bundled GPUs).
ACCELERATORS = {
    "T4": "NVIDIA_TESLA_T4", "V100": "NVIDIA_TESLA_V100", "A100": "NVIDIA_TESLA_A100", "A100-80GB": "NVIDIA_A100_80GB",
    "L4": "NVIDIA_L4", "H100": "NVIDIA_H100_80GB", "H200": "NVIDIA_H200_141GB",
}
#: Machine families Vertex AI custom training offers (the SDK ships no list of machine types).
MACHINE_FAMILIES = ("n1", "n2", "n2d", "e2", "c2", "c2d", "c3", "m1", "a2", "a3", "a4", "g2", "g4", "ct5lp", "ct5p", "ct6e")
#: TPU VM machine types: the chips of one host -> its slice's ``tpuTopology``, which the SDK says is
#: required for TPU v5 ("CustomJob.from_local_script": tpu_topology) and which Vertex reads for v6e.
#: Single-host shapes from Google's TPU pages: v5e and v6e 1x1, 2x2, 2x4
#: (https://cloud.google.com/tpu/docs/v5e, https://cloud.google.com/tpu/docs/v6e), v5p 2x2x1 for a
#: 4-chip VM (https://cloud.google.com/tpu/docs/v5p). The accelerator is the machine type's own.
TPU_TOPOLOGIES = {("ct5lp", 1): "1x1", ("ct5lp", 4): "2x2", ("ct5lp", 8): "2x4",
                  ("ct6e", 1): "1x1", ("ct6e", 4): "2x2", ("ct6e", 8): "2x4", ("ct5p", 4): "2x2x1"}
_MACHINE = re.compile(r"^(?P<family>[a-z][a-z0-9]*)-[a-z0-9]+(-[a-z0-9]+)*$")
#: Prebuilt training images ("Prebuilt containers for custom training",
#: https://cloud.google.com/vertex-ai/docs/training/pre-built-containers, and the supported frameworks
#: list https://cloud.google.com/vertex-ai/docs/supported-frameworks-list, which lists tf-cpu/tf-gpu
#: 2.12-2.14 .py310): framework -> version -> image name suffix after the version (``pytorch-gpu.2-4.py310``).
#: TensorFlow and PyTorch have cpu and gpu images; scikit-learn and XGBoost cpu ones.
PREBUILT = {
    "pytorch": {"2.0": ".py310", "2.1": ".py310", "2.2": ".py310", "2.3": ".py310", "2.4": ".py310"},
    "tensorflow": {"2.12": ".py310", "2.13": ".py310", "2.14": ".py310"},
    "sklearn": {"1.0": "", "1.2": "", "1.3": "", "1.5": "", "1.6": ""},
    "xgboost": {"1.6": "", "1.7": "", "2.1": ""},
}
#: Image names of the prebuilt families (``<name>-<device>.<major>-<minor><suffix>``).
PREBUILT_NAMES = {"pytorch": "pytorch", "tensorflow": "tf", "sklearn": "sklearn", "xgboost": "xgboost"}
#: Hugging Face's PyTorch training containers for Google Cloud (GPU), in the Deep Learning Platform
#: registry (https://huggingface.co/docs/google-cloud/containers/available): Transformers major.minor ->
#: (PyTorch major.minor, image). Vertex AI has no prebuilt Hugging Face TensorFlow training image.
HUGGINGFACE_TRAINING = {
    "4.42": ("2.3", "huggingface-pytorch-training-cu121.2-3.transformers.4-42.ubuntu2204.py310"),
    "4.44": ("2.3", "huggingface-pytorch-training-cu121.2-3.transformers.4-44.ubuntu2204.py311"),
    "4.48": ("2.3", "huggingface-pytorch-training-cu121.2-3.transformers.4-48.ubuntu2204.py311"),
}
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def split_gcs(uri: str) -> tuple[str, str]:
    bucket, _, path = uri[len("gs://"):].partition("/")
    return bucket, path


def staging(plan: "Plan") -> dict[str, Any]:
    """Where this submission's code, inputs and outputs go (see the module docstring)."""
    root = str(plan.settings.get("staging_bucket") or "")
    if not root.startswith("gs://") or not split_gcs(root)[0]:
        raise SpecError(f"vertex.staging_bucket: {root!r} is not a gs://bucket[/prefix] location",
                        "e.g. vertex: {staging_bucket: gs://my-bucket}")
    bucket, prefix = split_gcs(root.rstrip("/"))
    base = f"gs://{bucket}/{(prefix or DEFAULT_PREFIX).strip('/')}/{plan.job_name}"
    spec = plan.spec
    for where, uri in [*((f"outputs.{n}", o.uri) for n, o in spec.outputs.items()), ("checkpoint.uri", spec.checkpoint.uri)]:
        if uri and not uri.startswith("gs://"):
            raise SpecError(f"{where}: {uri} is not a gs:// location, which Vertex AI needs", "give a gs://bucket/prefix URI")
    model_uri = spec.outputs["model"].uri if "model" in spec.outputs else None
    output = (model_uri.rstrip("/") + "/") if model_uri else base + "/"
    return {
        "bucket": bucket,
        "base": base,
        "code": f"{base}/staging/code.tar.gz",
        "inputs": {name: f"{base}/staging/inputs/{name}/" for name, item in spec.inputs.items() if item.is_local},
        "output": output,  # baseOutputDirectory: the model goes to <output>model/ (AIP_MODEL_DIR)
        "model": output + "model/",
        "outputs": {name: (o.uri.rstrip("/") + "/") if o.uri else f"{output}outputs/{name}/"
                    for name, o in spec.outputs.items() if name != "model"},
    }


def accelerator_names() -> set[str]:
    """``aiplatform_v1.AcceleratorType``'s names, from the SDK's descriptors (:mod:`cloudtrain.providers.vertex_proto`)."""
    from cloudtrain.providers.vertex_proto import accelerator_types

    return set(accelerator_types())


def machine_spec(plan: "Plan", offer: Any = None) -> dict[str, Any]:
    """``machineSpec`` from the offer (the plan's, or a pool's): ``n1-standard-8+NVIDIA_TESLA_T4x1`` or ``a2-highgpu-1g``."""
    offer = offer or plan.offer
    if offer is None:
        raise SpecError("resources: no Vertex machine was chosen", "see `cloudtrain catalog --cloud vertex`")
    machine, _, attached = offer.instance_type.partition("+")
    accelerator, count = None, 0
    if attached:
        match = re.fullmatch(r"([A-Z0-9_]+)x(\d+)", attached)
        if not match:
            raise SpecError(f"resources.instance_type.vertex: {offer.instance_type!r} is not MACHINE+ACCELERATORxCOUNT",
                            "e.g. n1-standard-8+NVIDIA_TESLA_T4x1")
        accelerator, count = match.group(1), int(match.group(2))
    elif (offer.accelerator or "").startswith("TPU-"):
        return tpu_machine_spec(plan, offer, machine)
    elif offer.has_accelerator:
        accelerator, count = ACCELERATORS.get(offer.accelerator or ""), offer.accelerator_count
        if accelerator is None:
            raise SpecError(f"resources.accelerator: Vertex AI has no accelerator for {offer.accelerator}",
                            f"Vertex accelerators: {', '.join(sorted(ACCELERATORS))}")
    found = _MACHINE.match(machine)
    if not found or found.group("family") not in MACHINE_FAMILIES:
        raise SpecError(f"resources.instance_type.vertex: {machine!r} is not a Vertex AI training machine type",
                        f"machine families: {', '.join(MACHINE_FAMILIES)}; see `cloudtrain catalog --cloud vertex`")
    spec: dict[str, Any] = {"machineType": machine}
    if accelerator:
        if accelerator not in accelerator_names():
            raise SpecError(f"resources.instance_type.vertex: {accelerator!r} is not a Vertex AI accelerator type",
                            f"one of: {', '.join(sorted(accelerator_names()))}")
        spec.update(acceleratorType=accelerator, acceleratorCount=count)
    return spec


def tpu_machine_spec(plan: "Plan", offer: Any, machine: str) -> dict[str, Any]:
    """A TPU VM: its machine type and its single-host slice's topology (multi-host slices are not
    rendered: one node per job)."""
    family = machine.split("-", 1)[0]
    topology = TPU_TOPOLOGIES.get((family, offer.accelerator_count))
    if topology is None:
        shapes = ", ".join(f"{f}: {c} chips" for f, c in TPU_TOPOLOGIES)
        raise SpecError(f"resources.accelerator: {offer.accelerator}:{offer.accelerator_count} on {machine} is not a "
                        "single-host TPU VM cloudtrain can render", f"single-host TPU VMs: {shapes}")
    if plan.nodes > 1:
        raise SpecError(f"resources.nodes: a TPU slice of several hosts ({plan.nodes} x {machine}) is not rendered yet",
                        "use resources.nodes: 1 (one TPU VM of up to 8 chips)")
    return {"machineType": machine, "tpuTopology": topology}


def _major_minor(version: str) -> str:
    return ".".join(re.split(r"[.-]", version)[:2])


def _newest(versions: Any) -> str:
    return max(versions, key=lambda v: tuple(int(n) for n in v.split(".")))


def _registry(plan: "Plan") -> str:
    location = plan.region or "us-central1"
    return {"europe": "europe", "asia": "asia", "australia": "asia", "me": "europe"}.get(location.split("-")[0], "us")


def _huggingface_image(plan: "Plan") -> str:
    framework = plan.spec.framework
    assert framework is not None
    known = ", ".join(HUGGINGFACE_TRAINING)
    if framework.tensorflow:
        raise SpecError("framework.tensorflow: Vertex AI has no Hugging Face TensorFlow training image",
                        f"use pytorch (Transformers {known}), or give image: {{vertex: ...}}")
    version = _major_minor(framework.version) if framework.version else _newest(HUGGINGFACE_TRAINING)
    if version not in HUGGINGFACE_TRAINING:
        raise SpecError(f"framework.version: Vertex AI has no Hugging Face training image for Transformers {framework.version}",
                        f"versions it has: {known}; or give image: {{vertex: ...}}")
    pytorch, image = HUGGINGFACE_TRAINING[version]
    if framework.pytorch and _major_minor(framework.pytorch) != pytorch:
        raise SpecError(f"framework.pytorch: Vertex AI's Hugging Face Transformers {version} image has PyTorch {pytorch}, "
                        f"not {framework.pytorch}", f"give pytorch: '{pytorch}', or image: {{vertex: ...}}")
    if plan.offer is not None and not plan.offer.has_accelerator:
        raise SpecError("framework: Vertex AI's Hugging Face training images are for GPUs", "ask for an accelerator, e.g. T4")
    return f"{_registry(plan)}-docker.pkg.dev/deeplearning-platform-release/gcr.io/{image}:latest"


def training_image(plan: "Plan") -> str:
    """The spec's image, or Vertex's prebuilt training image for the framework (the newest without a
    version), in the registry nearest the location (us-, europe- or asia-docker.pkg.dev); a version
    Vertex has no image for is refused with the versions it has."""
    spec = plan.spec
    if spec.image_for("vertex"):
        return spec.image_for("vertex") or ""
    if spec.framework is None:
        raise SpecError("framework: Vertex AI needs a container: give framework {name} (a version too, or the newest) or image",
                        'e.g. framework: {name: sklearn, version: "1.3"}')
    if plan.offer is not None and (plan.offer.accelerator or "").startswith("TPU-"):
        # "Prebuilt containers for TPU v5e are not available" (and TensorFlow is not supported from v6e):
        # https://cloud.google.com/vertex-ai/docs/training/training-with-tpu-vm
        raise SpecError(f"framework: Vertex AI has no prebuilt training container for {plan.offer.accelerator} VMs",
                        "give image: {vertex: <your image with torch_xla / jax and libtpu>}")
    name = spec.framework.name
    if name == "huggingface":
        return _huggingface_image(plan)
    known = PREBUILT[name]
    version = _major_minor(spec.framework.version) if spec.framework.version else _newest(known)
    if version not in known:
        raise SpecError(f"framework.version: Vertex AI has no prebuilt {name} {spec.framework.version} training image",
                        f"versions it has: {', '.join(known)}; or give image:")
    major, minor = version.split(".")
    gpu = plan.offer is not None and plan.offer.has_accelerator
    device = "gpu" if gpu and name in ("pytorch", "tensorflow") else "cpu"
    return f"{_registry(plan)}-docker.pkg.dev/vertex-ai/training/{PREBUILT_NAMES[name]}-{device}.{major}-{minor}{known[version]}:latest"


def environment(plan: "Plan") -> dict[str, str]:
    """The container's variables: what the entry shim and the runtime context read."""
    from cloudtrain.providers.bundle import entry_environment
    from cloudtrain.providers.distribution import distribution_environment

    spec, where = plan.spec, staging(plan)
    env = entry_environment(plan)
    env.update(distribution_environment(plan))
    env["CLOUDTRAIN_CODE_URI"] = where["code"]
    if spec.hyperparameters:
        env["CLOUDTRAIN_HPS"] = json.dumps(spec.hyperparameters, sort_keys=True)
    if spec.inputs:
        env["CLOUDTRAIN_INPUTS"] = json.dumps({name: where["inputs"][name] if item.is_local else item.uri
                                               for name, item in spec.inputs.items()}, sort_keys=True)
    if where["outputs"]:
        env["CLOUDTRAIN_OUTPUTS"] = json.dumps(where["outputs"], sort_keys=True)
    if spec.checkpoint.enabled and spec.checkpoint.uri:
        env["CLOUDTRAIN_CHECKPOINT_URI"] = spec.checkpoint.uri  # fixed across resubmissions (else AIP_CHECKPOINT_DIR)
    return env


def command(plan: "Plan", plain: bool = False) -> list[str]:
    """``bash -c`` script: unpack the bundle read through the GCS mount, run the entry shim."""
    from cloudtrain.providers.distribution import training_nodes

    launch = "python cloudtrain/runtime/entry.py"
    if plan.spec.distribution.type in ("torchrun", "deepspeed") and not plain:
        launch = (f"torchrun --nnodes={training_nodes(plan)} --nproc_per_node={plan.processes_per_node} "
                  '--node_rank="${RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" '
                  '--master_port="${MASTER_PORT:-29500}" cloudtrain/runtime/entry.py')
    script = ('set -e; mount="${CLOUDTRAIN_GCS_MOUNT:-/gcs}"; code="$(mktemp -d)"; '
              'tar -xzf "$mount/${CLOUDTRAIN_CODE_URI#gs://}" -C "$code"; cd "$code"; exec ' + launch)
    return ["bash", "-c", script]


def label_value(text: str) -> str:
    """Vertex label rules: at most 63 of lowercase letters, digits, '_' and '-'."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def labels(plan: "Plan") -> dict[str, str]:
    out = {}
    for key, value in plan.spec.tags.items():
        clean = label_value(key)
        if not clean or not clean[0].isalpha():
            clean = ("t-" + clean)[:63]
        out[clean] = label_value(value)
    out[JOB_LABEL] = label_value(plan.spec.name)
    out[SUBMISSION_LABEL] = label_value(plan.submission_token)
    return out


def build_request(plan: "Plan") -> dict[str, Any]:
    spec, where = plan.spec, staging(plan)
    container: dict[str, Any] = {"imageUri": training_image(plan), "command": command(plan),
                                 "env": [{"name": k, "value": v} for k, v in environment(plan).items()]}
    if spec.command_kind == "container":  # a prebuilt container's own entrypoint, with the spec's args
        from cloudtrain.runtime.invocation import render_args

        container = {"imageUri": training_image(plan), "env": [{"name": k, "value": v} for k, v in spec.env.items()]}
        args = render_args(spec.args, spec.hyperparameters, spec.hyperparameters_as_args, plan.job_name)
        if args:
            container["args"] = args
    pool = {"machineSpec": machine_spec(plan), "replicaCount": "1", "containerSpec": container,
            "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": spec.resources.disk_gib}}
    pools = [pool]
    dist = spec.distribution
    if plan.pools:  # resources.pools: the first in pools 0 and 1, the others in 2 and 3, each with its machine
        pools = []
        for number, (name, nodes, offer) in enumerate(plan.pools):
            env = [{"name": k, "value": v} for k, v in {**environment(plan), "CLOUDTRAIN_POOL": name}.items()]
            spec_of = {"machineSpec": machine_spec(plan, offer), "diskSpec": pool["diskSpec"],
                       "containerSpec": {**container, "command": command(plan, plain=number > 0), "env": env}}
            pools.append({**spec_of, "replicaCount": "1" if number == 0 else str(nodes)})
            if number == 0:
                pools.append({**spec_of, "replicaCount": str(nodes - 1)} if nodes > 1 else {})
        if not pools[-1]:
            pools.pop()
    elif plan.nodes > 1:
        pools.append({**pool, "replicaCount": str(plan.nodes - 1)})
    if dist.parameter_servers or dist.reduction_server:
        if plan.nodes == 1:
            pools.append({})  # an empty pool 1 keeps pool 2 in its place
        if dist.reduction_server:
            from cloudtrain.providers.distribution import REDUCTION_SERVER_IMAGE

            pools.append({"machineSpec": {"machineType": dist.reduction_server.machine_type},
                          "replicaCount": str(dist.reduction_server.replicas),
                          "containerSpec": {"imageUri": REDUCTION_SERVER_IMAGE}})
        else:
            cpu = {k: v for k, v in pool["machineSpec"].items() if k == "machineType"}
            pools.append({**pool, "machineSpec": cpu, "replicaCount": str(dist.parameter_servers)})
    scheduling: dict[str, Any] = {}
    if plan.max_runtime_seconds:
        scheduling["timeout"] = f"{plan.max_runtime_seconds}s"
    if spec.checkpoint.enabled:
        scheduling["restartJobOnWorkerRestart"] = True
    if plan.spot:
        scheduling["strategy"] = "SPOT"
        if plan.max_wait_seconds:
            scheduling["maxWaitDuration"] = f"{plan.max_wait_seconds}s"
    job_spec: dict[str, Any] = {"workerPoolSpecs": pools, "baseOutputDirectory": {"outputUriPrefix": where["output"]}}
    if scheduling:
        job_spec["scheduling"] = scheduling
    if plan.settings.get("service_account"):
        job_spec["serviceAccount"] = plan.settings["service_account"]
    return {"displayName": plan.job_name, "jobSpec": job_spec, "labels": labels(plan)}


def validate_request(request: dict[str, Any]) -> None:
    """Parse as the SDK's ``CustomJob.from_json`` does, against its descriptors (unknown fields, types
    and enum names refused; :mod:`cloudtrain.providers.vertex_proto`), then check what the proto does
    not: required fields and Vertex's label rules."""
    from cloudtrain.providers.vertex_proto import parse

    job = parse("CustomJob", request)
    problems = []
    if not job.display_name:
        problems.append("displayName is required")
    if not job.job_spec.worker_pool_specs:
        problems.append("jobSpec.workerPoolSpecs needs at least one pool")
    for index, pool in enumerate(job.job_spec.worker_pool_specs):
        if index and not pool.replica_count and not pool.machine_spec.machine_type:
            continue  # an empty pool holding a later pool's place (Vertex's documented form)
        if not pool.machine_spec.machine_type:
            problems.append(f"jobSpec.workerPoolSpecs[{index}].machineSpec.machineType is required")
        if not pool.container_spec.image_uri and not pool.python_package_spec.executor_image_uri:
            problems.append(f"jobSpec.workerPoolSpecs[{index}]: a container image is required")
    if len(job.labels) > 64:
        problems.append(f"labels: {len(job.labels)} labels, at most 64 allowed")
    for key, value in job.labels.items():
        if not _LABEL_KEY.match(key) or not re.fullmatch(r"[a-z0-9_-]{0,63}", value):
            problems.append(f"labels[{key!r}]: keys and values are lowercase letters, digits, '_' and '-' (at most 63)")
    if problems:
        raise SpecError("the Vertex AI CustomJob is not valid:\n  " + "\n  ".join(problems),
                        "fix the spec fields behind the request fields named above")
