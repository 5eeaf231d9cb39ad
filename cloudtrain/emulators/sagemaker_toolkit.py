"""What a SageMaker framework container does in script mode, emulated on this machine.

The SageMaker training toolkit (inside the PyTorch, scikit-learn... images) reads the request's
HyperParameters: ``sagemaker_program`` (the script inside the code bundle),
``sagemaker_submit_directory`` (``s3://.../sourcedir.tar.gz``), ``sagemaker_region`` and, for
``torchrun``, ``sagemaker_torch_distributed_enabled``; every other key is a user hyperparameter
(a JSON-encoded string). It extracts the bundle to ``/opt/ml/code``, sets ``SM_*`` variables and
runs ``python <program> --key value ...`` there (``torchrun --nnodes N --nproc_per_node P
--node_rank i --master_addr ... --master_port ...`` when torch distributed is enabled).

Here each host ``algo-i`` gets its own ``<job root>/algo-i/opt/ml`` tree; every ``/opt/ml`` path the
job is given (``SM_*`` variables, request Environment values starting with ``/opt/ml``, the checkpoint
``LocalPath``) is rooted there, and where the machine allows it the tree is also bound on ``/opt/ml``
itself for the host's processes (:mod:`cloudtrain.emulators.sagemaker_mounts`), so a script that
opens ``/opt/ml/input/config/hyperparameters.json`` directly finds it; where it does not, the job's
log says so. The interpreter is this one (``sys.executable``): no container image
is pulled. The distribution options the toolkits read from the hyperparameters:

- ``sagemaker_torch_distributed_enabled``: ``torchrun`` on every host with one process per GPU of
  the instance type (as the toolkit starts them; the count comes from the catalog's SageMaker
  machine table; 1 on a CPU instance). The processes see no GPU here (``SM_NUM_GPUS`` 0) and run on
  the CPU (gloo). The rendezvous is on 127.0.0.1 at a free port.
- ``sagemaker_mpi_enabled`` with ``sagemaker_mpi_num_of_processes_per_host`` and
  ``sagemaker_mpi_custom_mpi_options``: as the toolkit, one ``mpirun`` on the master host starts
  every host's ranks (``-np hosts x processes``) and every rank sees the master's environment; here
  they all run on this machine (``--oversubscribe``, root allowed), and the other hosts start
  nothing (on SageMaker they only wait for mpirun's ssh).
- ``sagemaker_multi_worker_mirrored_strategy_enabled``: ``TF_CONFIG`` with one worker per host;
  ``sagemaker_parameter_server_enabled``: ``TF_CONFIG`` as the TensorFlow toolkit builds it (the first
  host ``master``, the others ``worker``, a ``ps`` task on every host, ``environment: cloud``). The ps
  tasks SageMaker runs are TensorFlow servers of the toolkit's own; without TensorFlow here none is
  started, and ``TF_CONFIG`` names them as SageMaker does. Addresses are 127.0.0.1 with a port per task.

Heterogeneous clusters (``ResourceConfig.InstanceGroups``): hosts are numbered across the groups in
order, each sees its group in ``SM_CURRENT_INSTANCE_GROUP`` (and ``resourceconfig.json``), and the
distributed launch spans the hosts of ``sagemaker_distribution_instance_groups``; the other groups'
hosts run the program plainly, as the toolkit does.

The toolkit's own addresses are 127.0.0.1 (hosts ``algo-N`` resolve only inside a job's mount
namespace, where :mod:`cloudtrain.emulators.sagemaker_mounts` binds a hosts file naming them). Runtime-contract variables of
the emulator's own process (``CLOUDTRAIN_*``, ``SM_*``, ``RANK``...) are unset for the job.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtrain.emulators.common import without_inherited
from cloudtrain.providers.process import NodeCommand

DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints"


def decode_hyperparameter(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def user_hyperparameters(hyperparameters: dict[str, str]) -> dict[str, Any]:
    """The user's hyperparameters, decoded, without the toolkit's ``sagemaker_*`` keys (``SM_HPS``)."""
    return {k: decode_hyperparameter(v) for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}


def cli_args(hyperparameters: dict[str, Any]) -> list[str]:
    """``sagemaker_training.mapping.to_cmd_args``: sorted ``--key value`` pairs (``-k`` for one letter)."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        args += [f"--{key}" if len(key) > 1 else f"-{key}", str(value)]
    return args


@dataclass
class HostLayout:
    """The ``/opt/ml`` tree of one host, rooted under ``base``."""

    base: Path
    checkpoint_local_path: str = DEFAULT_CHECKPOINT_PATH

    def rooted(self, path: str) -> Path:
        return self.base / path.lstrip("/")

    @property
    def ml(self) -> Path:
        return self.base / "opt" / "ml"

    code = property(lambda self: self.ml / "code")
    input_dir = property(lambda self: self.ml / "input")
    config_dir = property(lambda self: self.ml / "input" / "config")
    model_dir = property(lambda self: self.ml / "model")
    output_dir = property(lambda self: self.ml / "output")
    output_data_dir = property(lambda self: self.ml / "output" / "data")
    checkpoint_dir = property(lambda self: self.rooted(self.checkpoint_local_path))

    def channel_dir(self, channel: str) -> Path:
        return self.ml / "input" / "data" / channel

    def make(self) -> None:
        for directory in (self.code, self.config_dir, self.model_dir, self.output_data_dir, self.output_dir / "intermediate",
                          self.checkpoint_dir):
            directory.mkdir(parents=True, exist_ok=True)


@dataclass
class ScriptMode:
    """The toolkit's view of one CreateTrainingJob request."""

    request: dict[str, Any]
    arn: str
    region: str

    @property
    def hyperparameters(self) -> dict[str, str]:
        return dict(self.request.get("HyperParameters") or {})

    @property
    def program(self) -> str | None:
        return decode_hyperparameter(self.hyperparameters.get("sagemaker_program")) or None

    @property
    def submit_directory(self) -> str | None:
        return decode_hyperparameter(self.hyperparameters.get("sagemaker_submit_directory")) or None

    @property
    def torch_distributed(self) -> bool:
        value = decode_hyperparameter(self.hyperparameters.get("sagemaker_torch_distributed_enabled", "false"))
        return str(value).lower() == "true"

    @property
    def instance_groups(self) -> list[dict[str, Any]]:
        """``[{instance_group_name, instance_type, hosts}]``: the request's InstanceGroups (hosts numbered
        across them in order), else SageMaker's one ``homogeneousCluster``."""
        config = self.request.get("ResourceConfig", {})
        groups = config.get("InstanceGroups") or [{"InstanceGroupName": "homogeneousCluster", "InstanceType": config.get("InstanceType", "ml.m5.large"),
                                                   "InstanceCount": config.get("InstanceCount", 1) or 1}]
        out, number = [], 0
        for group in groups:
            hosts = [f"algo-{number + i + 1}" for i in range(int(group["InstanceCount"]))]
            number += len(hosts)
            out.append({"instance_group_name": group["InstanceGroupName"], "instance_type": group["InstanceType"], "hosts": hosts})
        return out

    @property
    def hosts(self) -> list[str]:
        return [host for group in self.instance_groups for host in group["hosts"]]

    def group_of(self, host: str) -> dict[str, Any]:
        return next(g for g in self.instance_groups if host in g["hosts"])

    @property
    def heterogeneous(self) -> bool:
        return bool(self.request.get("ResourceConfig", {}).get("InstanceGroups"))

    @property
    def distribution_hosts(self) -> list[str]:
        """The hosts the distributed launch spans: ``sagemaker_distribution_instance_groups``' (all without)."""
        names = decode_hyperparameter(self.hyperparameters.get("sagemaker_distribution_instance_groups", "[]")) or []
        return [h for g in self.instance_groups if not names or g["instance_group_name"] in names for h in g["hosts"]]

    @property
    def instance_type(self) -> str:
        return str(self.instance_groups[0]["instance_type"])

    @property
    def channels(self) -> list[dict[str, Any]]:
        return list(self.request.get("InputDataConfig") or [])

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.request.get("Environment") or {})

    @property
    def checkpoint_local_path(self) -> str:
        return (self.request.get("CheckpointConfig") or {}).get("LocalPath") or DEFAULT_CHECKPOINT_PATH

    def _flag(self, name: str) -> bool:
        return str(decode_hyperparameter(self.hyperparameters.get(name, "false"))).lower() == "true"

    @property
    def mpi(self) -> bool:
        return self._flag("sagemaker_mpi_enabled")

    @property
    def tensorflow_strategy(self) -> str | None:
        """``mwms`` or ``parameter_server`` when the TensorFlow toolkit's option is on."""
        if self._flag("sagemaker_parameter_server_enabled"):
            return "parameter_server"
        return "mwms" if self._flag("sagemaker_multi_worker_mirrored_strategy_enabled") else None

    def instance_gpus(self, instance_type: str | None = None) -> int:
        """The GPUs of the instance type, from the catalog's SageMaker machine table (0 if unknown)."""
        from cloudtrain.catalog.loading import machine_table
        from cloudtrain.catalog.machines import read_machines

        wanted = instance_type or self.instance_type
        text = machine_table("sagemaker") or ""
        return next((m.accelerator_count for m in read_machines(text) if m.instance_type == wanted), 0)

    def processes_per_node(self) -> int:
        if self.mpi:
            value = str(decode_hyperparameter(self.hyperparameters.get("sagemaker_mpi_num_of_processes_per_host", "1")))
            return int(value) if value.strip().isdigit() and int(value) > 0 else 1
        return max(1, self.instance_gpus(self.group_of(self.distribution_hosts[0])["instance_type"])) if self.torch_distributed else 1

    def tf_config(self, host: str, ports: list[int]) -> str | None:
        """``TF_CONFIG`` of ``host``'s training task (``ports``: one per host for the training tasks,
        then one per host for the ps tasks)."""
        import json as _json

        strategy, hosts = self.tensorflow_strategy, self.hosts
        address = lambda i: f"127.0.0.1:{ports[i]}"  # noqa: E731
        if strategy == "mwms":
            return _json.dumps({"cluster": {"worker": [address(i) for i in range(len(hosts))]},
                                "task": {"index": hosts.index(host), "type": "worker"}})
        if strategy == "parameter_server":
            cluster: dict[str, Any] = {"master": [address(0)]}
            if len(hosts) > 1:
                cluster["ps"] = [address(len(hosts) + i) for i in range(len(hosts))]
                cluster["worker"] = [address(i) for i in range(1, len(hosts))]
            task = {"index": 0, "type": "master"} if host == hosts[0] else {"index": hosts.index(host) - 1, "type": "worker"}
            return _json.dumps({"cluster": cluster, "environment": "cloud", "task": task})
        return None

    def write_config(self, layout: HostLayout, host: str) -> None:
        """``/opt/ml/input/config/*.json`` as SageMaker writes them."""
        config = layout.config_dir
        (config / "hyperparameters.json").write_text(json.dumps(self.hyperparameters))
        (config / "resourceconfig.json").write_text(json.dumps(self._resource_config(host)))
        (config / "inputdataconfig.json").write_text(json.dumps({
            c["ChannelName"]: {"TrainingInputMode": c.get("InputMode") or self.request["AlgorithmSpecification"].get("TrainingInputMode", "File"),
                               "S3DistributionType": c.get("DataSource", {}).get("S3DataSource", {}).get("S3DataDistributionType", "FullyReplicated"),
                               "RecordWrapperType": c.get("RecordWrapperType", "None")}
            for c in self.channels}))
        if self.request.get("CheckpointConfig"):
            (config / "checkpointconfig.json").write_text(json.dumps(self.request["CheckpointConfig"]))

    def _resource_config(self, host: str) -> dict[str, Any]:
        group = self.group_of(host)
        return {"current_host": host, "current_instance_type": group["instance_type"], "current_group_name": group["instance_group_name"],
                "hosts": self.hosts, "network_interface_name": "eth0", "instance_groups": self.instance_groups}

    def environment_for(self, layout: HostLayout, host: str) -> dict[str, str]:
        """The variables the job's processes see on ``host``: the request's Environment (``/opt/ml``
        paths rooted), then what the toolkit sets."""
        hps = user_hyperparameters(self.hyperparameters)
        names = [c["ChannelName"] for c in self.channels]
        program = self.program or ""
        training_env = {
            "additional_framework_parameters": {k: decode_hyperparameter(v) for k, v in self.hyperparameters.items()
                                                if k.startswith("sagemaker_") and k not in ("sagemaker_program", "sagemaker_submit_directory", "sagemaker_region")},
            "channel_input_dirs": {n: str(layout.channel_dir(n)) for n in names},
            "current_host": host, "current_instance_type": self.instance_type, "hosts": self.hosts,
            "master_hostname": self.hosts[0], "is_master": host == self.hosts[0],
            "hyperparameters": hps, "input_config_dir": str(layout.config_dir), "input_data_config": {n: {} for n in names},
            "input_dir": str(layout.input_dir), "job_name": self.request["TrainingJobName"], "log_level": 20,
            "model_dir": str(layout.model_dir), "module_dir": self.submit_directory or "",
            "module_name": Path(program).stem, "network_interface_name": "eth0", "num_cpus": os.cpu_count() or 1,
            "num_gpus": 0, "output_data_dir": str(layout.output_data_dir), "output_dir": str(layout.output_dir),
            "output_intermediate_dir": str(layout.output_dir / "intermediate"),
            "resource_config": self._resource_config(host), "user_entry_point": program,
        }
        env = {k: str(layout.rooted(v)) if v.startswith("/opt/ml") else v for k, v in self.environment.items()}
        env.update({
            "TRAINING_JOB_NAME": self.request["TrainingJobName"], "TRAINING_JOB_ARN": self.arn,
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "SM_HOSTS": json.dumps(self.hosts), "SM_CURRENT_HOST": host, "SM_CURRENT_INSTANCE_TYPE": self.instance_type,
            "SM_NUM_GPUS": "0", "SM_NUM_CPUS": str(os.cpu_count() or 1), "SM_NETWORK_INTERFACE_NAME": "eth0",
            "SM_MODEL_DIR": str(layout.model_dir), "SM_OUTPUT_DIR": str(layout.output_dir),
            "SM_OUTPUT_DATA_DIR": str(layout.output_data_dir), "SM_OUTPUT_INTERMEDIATE_DIR": str(layout.output_dir / "intermediate"),
            "SM_INPUT_DIR": str(layout.input_dir), "SM_INPUT_CONFIG_DIR": str(layout.config_dir),
            "SM_CHANNELS": json.dumps(sorted(names)), "SM_HPS": json.dumps(hps), "SM_USER_ARGS": json.dumps(cli_args(hps)),
            "SM_USER_ENTRY_POINT": program, "SM_MODULE_NAME": Path(program).stem, "SM_MODULE_DIR": self.submit_directory or "",
            "SM_LOG_LEVEL": "20", "SM_FRAMEWORK_MODULE": "", "SM_RESOURCE_CONFIG": json.dumps(self._resource_config(host)),
            "SM_INPUT_DATA_CONFIG": json.dumps(training_env["input_data_config"]), "SM_TRAINING_ENV": json.dumps(training_env),
            "CLOUDTRAIN_CHECKPOINT_DIR": str(layout.checkpoint_dir), "PYTHONUNBUFFERED": "1",
            # the code, then the job's own Environment's PYTHONPATH, then the emulator's (the container's)
            "PYTHONPATH": os.pathsep.join(p for p in (str(layout.code), env.get("PYTHONPATH", ""), os.environ.get("PYTHONPATH", "")) if p),
        })
        env.update({f"SM_CHANNEL_{n.upper()}": str(layout.channel_dir(n)) for n in names})
        if self.heterogeneous:  # the training toolkit's heterogeneous-cluster variables
            group = self.group_of(host)
            env.update({"SM_CURRENT_INSTANCE_GROUP": group["instance_group_name"], "SM_CURRENT_INSTANCE_TYPE": group["instance_type"],
                        "SM_CURRENT_INSTANCE_GROUP_HOSTS": json.dumps(group["hosts"]),
                        "SM_INSTANCE_GROUPS": json.dumps([g["instance_group_name"] for g in self.instance_groups]),
                        "SM_DISTRIBUTION_INSTANCE_GROUPS": json.dumps(sorted({self.group_of(h)["instance_group_name"] for h in self.distribution_hosts}))})
        env.update({f"SM_HP_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in hps.items()})
        return env

    def node_commands(self, layouts: dict[str, HostLayout], master_port: int, ports: list[int]) -> list[tuple[str, NodeCommand]]:
        """(host, command) of every process the toolkit starts: one per host, or one mpirun on the
        master host for MPI."""
        hosts, training = list(layouts), self.distribution_hosts
        if self.mpi:  # mpirun on the first distribution host; the other groups' hosts run the script plainly
            return [(training[0], self.node_command(layouts[training[0]], training[0], master_port, ports))] + [
                (h, self.node_command(layouts[h], h, master_port, ports, plain=True)) for h in hosts if h not in training]
        return [(host, self.node_command(layouts[host], host, master_port, ports, plain=host not in training)) for host in hosts]

    def node_command(self, layout: HostLayout, host: str, master_port: int, ports: list[int] | None = None,
                     plain: bool = False) -> NodeCommand:
        env = self.environment_for(layout, host)
        program = self.program or ""
        args = cli_args(user_hyperparameters(self.hyperparameters))
        config = self.tf_config(host, ports or []) if self.tensorflow_strategy and ports else None
        if config:
            env["TF_CONFIG"] = config
        if plain:
            argv = [sys.executable, program, *args]
        elif self.mpi:
            import shlex

            from cloudtrain.providers.distribution import MPI_ROOT_ENV, mpirun_local

            env.update(MPI_ROOT_ENV)
            options = shlex.split(str(decode_hyperparameter(self.hyperparameters.get("sagemaker_mpi_custom_mpi_options", ""))))
            launcher = mpirun_local(len(self.distribution_hosts) * self.processes_per_node(), options)
            argv = [*launcher, sys.executable, program, *args]
        elif self.torch_distributed:
            training = self.distribution_hosts
            argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(len(training)),
                    "--nproc_per_node", str(self.processes_per_node()), "--node_rank", str(training.index(host)),
                    "--master_addr", "127.0.0.1", "--master_port", str(master_port), program, *args]
        else:
            argv = [sys.executable, program, *args]
        return NodeCommand(argv=without_inherited(argv, env), env=env, cwd=str(layout.code))
