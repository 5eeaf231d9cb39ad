"""One emulated SageMaker training job, from CreateTrainingJob to a terminal state.

Lifecycle (``TrainingJobStatus`` / ``SecondaryStatus``, each change recorded in
``SecondaryStatusTransitions``): InProgress/Starting -> Downloading (code bundle, channels,
checkpoints restored from ``CheckpointConfig.S3Uri``) -> Training -> Uploading (``model.tar.gz`` of
the hosts' model directories to ``{S3OutputPath}/{job}/output/model.tar.gz``, ``output.tar.gz`` of
``/opt/ml/output/data``, a last checkpoint sync) -> Completed. A non-zero exit gives Failed with
``FailureReason`` "AlgorithmError: <the error's last line>, exit code: N" (or the content of
``/opt/ml/output/failure`` when the script wrote one, as with the real toolkit); a problem with the
request's data gives "ClientError: ...". StopTrainingJob gives Stopping: SIGTERM to every process,
SIGKILL after the grace period, the model uploaded, then Stopped; exceeding
``MaxRuntimeInSeconds`` does the same and ends Stopped/MaxRuntimeExceeded.

Output lines go to CloudWatch Logs, group ``/aws/sagemaker/TrainingJobs``, one stream per host and
attempt, ``{job}/algo-{i}-{epoch seconds}``. Checkpoint directories are mirrored to S3 while the
job runs. With a ``preempt`` fault pending, a job with ``EnableManagedSpotTraining`` is interrupted
once after its first checkpoint settles: processes stopped, secondary status Interrupted, then
Restarting on fresh hosts whose checkpoint directories are restored from S3, as managed spot
training does. A job runs either in script mode (:mod:`cloudtrain.emulators.sagemaker_toolkit`) or, when its
request has an ``AlgorithmSpecification.ContainerEntrypoint``, as that container command
(:mod:`cloudtrain.emulators.sagemaker_container`), with ``/opt/ml`` bound to the host's tree
(:mod:`cloudtrain.emulators.sagemaker_mounts`) and the platform's variables (the emulator's
endpoint, its proxy, and the job's container credentials URI). A job never sees the credentials of
the emulator's own process (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``...): it acts as its role. The run loop itself is
:class:`cloudtrain.emulators.job_runner.EmulatedJob`;
this module supplies SageMaker's states, layout, logs and uploads.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import tarfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cloudtrain.emulators import sagemaker_mounts
from cloudtrain.emulators.common import CALLER_IDENTITY
from cloudtrain.emulators.job_runner import EmulatedJob, Failure, JobSettings, JobSetupError, Phase
from cloudtrain.emulators.sagemaker_container import WORKING_DIRECTORY, ContainerCommand, host_interpreter
from cloudtrain.emulators.sagemaker_toolkit import HostLayout, ScriptMode
from cloudtrain.providers.process import NodeCommand, free_port
from cloudtrain.runtime.context import matched_metrics

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")
_moto_lock = threading.Lock()  # moto's logs backend is not thread-safe
#: Phase -> (TrainingJobStatus, SecondaryStatus, StatusMessage); QUEUED is the "Starting" set at creation.
STATES = {
    Phase.PREPARING: ("InProgress", "Downloading", "Downloading input data"),
    Phase.RUNNING: ("InProgress", "Training", "Training image download completed. Training in progress."),
    Phase.INTERRUPTED: ("InProgress", "Interrupted", "The spot instance was interrupted; restarting from the last checkpoint"),
    Phase.RESTARTING: ("InProgress", "Restarting", "Restarting the training job on new spot capacity"),
    Phase.CANCELLING: ("Stopping", "Stopping", "Stopping the training job"),
    Phase.FINALIZING: ("InProgress", "Uploading", "Uploading generated training model"),
    Phase.SUCCEEDED: ("Completed", "Completed", "Training job completed"),
    Phase.FAILED: ("Failed", "Failed", "Training job failed"),
    Phase.CANCELLED: ("Stopped", "Stopped", "Training job stopped"),
    Phase.TIMED_OUT: ("Stopped", "MaxRuntimeExceeded", "Training job stopped: MaxRuntimeInSeconds exceeded"),
}
#: How each kind of failure starts its FailureReason.
_FAILURE_PREFIX = {"job": "", "setup": "ClientError: ", "internal": "InternalServerError: "}


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise JobSetupError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


class TrainingJobRun(EmulatedJob):
    """One created job; keeps moto's record of it (``fake``) up to date. ``s3``: the emulator's
    internal S3 client."""

    finalized_outcomes = (Phase.SUCCEEDED, Phase.TIMED_OUT)  # a failed job goes straight to Failed
    preemption_notice = "cloudtrain-emulator: spot capacity reclaimed: interrupting the training job"

    def __init__(self, request: dict[str, Any], fake: Any, account: str, region: str, root: Path, s3: Any,
                 settings: JobSettings, platform_environment: dict[str, str] | None = None) -> None:
        super().__init__(request["TrainingJobName"], root, settings)
        self.request, self.fake, self.account, self.region, self.s3 = request, fake, account, region, s3
        self.platform_environment = dict(platform_environment or {})
        self._interpreters: dict[str, Path] = {}
        self.mode = ScriptMode(request, fake.arn, region)
        self.container = ContainerCommand(request, fake.arn, region) if ContainerCommand.requested(request) else None
        self.layouts = {h: HostLayout(root / h, self.mode.checkpoint_local_path) for h in self.mode.hosts}
        self._streams: dict[str, str] = {}
        self._last_stamp: dict[str, int] = {}
        self._metrics: dict[str, float] = {}
        #: every value each metric definition matched, in log order (what a tuner's early stopping reads)
        self.metric_series: dict[str, list[float]] = {}
        self._metric_patterns = [(m["Name"], re.compile(m["Regex"])) for m in
                                 (request.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []]
        now = _now()
        spec = dict(request.get("AlgorithmSpecification") or {})
        fake.__dict__.update(  # moto's describe shows every non-None attribute
            training_job_status="InProgress", secondary_status="Starting", algorithm_specification=spec,
            environment=dict(request["Environment"]) if request.get("Environment") else None,
            # the service answers KmsKeyId "" when none was given (the SDK v2's attach() reads it)
            output_data_config={"KmsKeyId": "", **(request.get("OutputDataConfig") or {})},
            secondary_status_transitions=[{"Status": "Starting", "StartTime": now, "StatusMessage": "Launching requested ML instances"}],
            model_artifacts=None, failure_reason=None, training_start_time=None, training_end_time=None,
            final_metric_data_list=None, training_time_in_seconds=None, billable_time_in_seconds=None,
            creation_time=now, last_modified_time=now)

    # -- state --------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self.fake.training_job_status

    def record_state(self, phase: Phase, failure: Failure | None) -> None:
        if phase not in STATES:
            return
        status, secondary, message = STATES[phase]
        now = _now()
        if phase is Phase.PREPARING:
            self.fake.training_start_time = now
        if phase.is_terminal:
            seconds = max(1, round(self.running_seconds))
            self.fake.__dict__.update(
                training_end_time=now, training_time_in_seconds=seconds, billable_time_in_seconds=seconds,
                failure_reason=_FAILURE_PREFIX[failure.kind] + failure.message if failure else None,
                final_metric_data_list=[{"MetricName": n, "Value": v, "Timestamp": now} for n, v in self._metrics.items()] or None)
        history = list(self.fake.secondary_status_transitions)
        if history and "EndTime" not in history[-1]:
            history[-1] = {**history[-1], "EndTime": now}
        entry = {"Status": secondary, "StartTime": now, "StatusMessage": message}
        if phase.is_terminal:
            entry["EndTime"] = now
        self.fake.secondary_status_transitions = history + [entry]
        self.fake.training_job_status, self.fake.secondary_status = status, secondary
        self.fake.last_modified_time = now

    # -- logs ---------------------------------------------------------------------------------

    def _open_streams(self) -> None:
        from moto.logs.models import logs_backends

        backend = logs_backends[self.account][self.region]
        stamp = int(time.time())
        with _moto_lock:
            if LOG_GROUP not in backend.groups:
                backend.create_log_group(LOG_GROUP, tags={})
            for host in self.mode.hosts:
                stream = f"{self.name}/{host}-{stamp}"
                while stream in backend.groups[LOG_GROUP].streams:
                    stamp += 1
                    stream = f"{self.name}/{host}-{stamp}"
                backend.create_log_stream(LOG_GROUP, stream)
                self._streams[host] = stream

    def log(self, host: str, message: str) -> None:
        from moto.logs.models import logs_backends

        if host not in self._streams:
            self._open_streams()
        with _moto_lock:
            stamp = max(int(time.time() * 1000), self._last_stamp.get(host, 0))
            self._last_stamp[host] = stamp
            logs_backends[self.account][self.region].put_log_events(
                LOG_GROUP, self._streams[host], [{"timestamp": stamp, "message": message}])

    def write_line(self, node: int, text: str) -> None:
        for name, value in matched_metrics(self._metric_patterns, text):
            self._metrics[name] = value
            self.metric_series.setdefault(name, []).append(value)
        hosts = getattr(self, "_command_hosts", None) or self.mode.hosts
        self.log(hosts[min(node, len(hosts) - 1)], text)

    def note(self, text: str) -> None:
        for host in self.mode.hosts:
            self.log(host, text)

    # -- storage ------------------------------------------------------------------------------

    def _download_prefix(self, uri: str, destination: Path, shard: tuple[int, int] = (0, 1)) -> int:
        bucket, prefix = split_s3_uri(uri)
        keys = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        except self.s3.exceptions.NoSuchBucket:
            raise JobSetupError(f"Data download failed: the bucket {bucket} does not exist") from None
        keys = sorted(keys)[shard[0]::shard[1]]
        for key in keys:  # placed as the SageMaker SDK's local mode places them
            relative = Path(key).name if key == prefix else key[len(prefix):].lstrip("/")
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download_file(bucket, key, str(target))
        return len(keys)

    def _upload_tar(self, directories: list[Path], uri: str) -> None:
        buffer, seen = io.BytesIO(), set()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for directory in directories:
                for path in sorted(directory.rglob("*")) if directory.is_dir() else []:
                    relative = path.relative_to(directory).as_posix()
                    if relative not in seen:
                        seen.add(relative)
                        archive.add(path, arcname=relative, recursive=False)
        bucket, key = split_s3_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    def _checkpoint_uri(self) -> str | None:
        uri = (self.request.get("CheckpointConfig") or {}).get("S3Uri")
        return uri.rstrip("/") if uri else None

    def mirrored_directories(self) -> list[Path]:
        return [layout.checkpoint_dir for layout in self.layouts.values()]

    def upload_mirrored(self, relative: str, path: Path) -> None:
        uri = self._checkpoint_uri()
        if uri:
            bucket, prefix = split_s3_uri(uri)
            self.s3.upload_file(str(path), bucket, f"{prefix}/{relative}" if prefix else relative)

    def upload_outputs(self, outcome: Phase) -> None:
        base = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{self.name}/output"
        first = next(iter(self.layouts.values()))
        self._upload_tar([first.output_data_dir], f"{base}/output.tar.gz")
        if outcome is not Phase.FAILED:
            self._upload_tar([l.model_dir for l in self.layouts.values()], f"{base}/model.tar.gz")
            self.fake.model_artifacts = {"S3ModelArtifacts": f"{base}/model.tar.gz"}

    # -- the job's particulars ------------------------------------------------------------------

    def preemptible(self) -> bool:
        return bool(self.request.get("EnableManagedSpotTraining"))

    def max_runtime_seconds(self) -> float | None:
        seconds = (self.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        return float(seconds) if seconds else None

    def prepare(self, restart: bool) -> None:
        """Lay out every host; on a restart, fresh hosts: new log streams, empty model, output and
        checkpoint directories, and the checkpoints restored from S3."""
        self._open_streams()
        if self.container is not None:
            reason = sagemaker_mounts.unavailable_reason()
            if reason:
                raise JobSetupError(f"a job with a ContainerEntrypoint sees its files at /opt/ml, which this machine "
                                    f"cannot give it: {reason}")
        elif not self.mode.program or not self.mode.submit_directory:
            raise JobSetupError("the emulator runs script-mode jobs (HyperParameters sagemaker_program and "
                                "sagemaker_submit_directory) and jobs with an AlgorithmSpecification.ContainerEntrypoint")
        bundle = self.root / "sourcedir.tar.gz"
        if not restart and self.container is None:
            bucket, key = split_s3_uri(self.mode.submit_directory)
            try:
                self.s3.download_file(bucket, key, str(bundle))
            except Exception as error:
                raise JobSetupError(f"could not download the code bundle {self.mode.submit_directory}: {error}") from None
        for index, (host, layout) in enumerate(self.layouts.items()):
            if restart:  # a fresh instance: only the code and the input data are laid out again as they were
                for directory in (layout.model_dir, layout.output_dir, layout.checkpoint_dir):
                    shutil.rmtree(directory, ignore_errors=True)
            layout.make()
            if not restart and self.container is None:
                with tarfile.open(bundle) as archive:
                    archive.extractall(layout.code, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            if not restart:
                self._download_channels(layout, index)
                if self.container is not None:
                    try:
                        self._interpreters[host] = host_interpreter(self.root / host / "python")
                    except OSError as error:
                        raise JobSetupError(str(error)) from None
            self.mode.write_config(layout, host)
            if self._checkpoint_uri():
                self._download_prefix(self._checkpoint_uri() + "/", layout.checkpoint_dir)

    def _download_channels(self, layout: HostLayout, index: int) -> None:
        for channel in self.mode.channels:
            source = channel.get("DataSource", {}).get("S3DataSource")
            if not source:
                raise JobSetupError(f"channel {channel['ChannelName']}: only S3DataSource channels are emulated")
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise JobSetupError(f"channel {channel['ChannelName']}: S3DataType {source['S3DataType']} is not emulated")
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
            destination = layout.channel_dir(channel["ChannelName"])
            destination.mkdir(parents=True, exist_ok=True)
            self._download_prefix(source["S3Uri"], destination, (index, len(self.layouts)) if sharded else (0, 1))

    def node_commands(self) -> list[NodeCommand]:
        if self.container is not None:
            placed = [(host, self.container.node_command(str(layout.code), self._interpreters[host]))
                      for host, layout in self.layouts.items()]
        else:
            port = free_port()
            ports = [free_port() for _ in range(2 * len(self.layouts))]  # TF_CONFIG: training tasks, then ps tasks
            placed = self.mode.node_commands(self.layouts, port, ports)
        self._command_hosts = [host for host, _ in placed]
        unbound = sagemaker_mounts.unavailable_reason()
        if unbound and self.container is None:
            self.note(f"cloudtrain-emulator: /opt/ml is not available to this job ({unbound}); "
                      "the SM_* variables point to the job's files")
        commands = []
        for host, command in placed:
            env = {**self.platform_environment, **command.env}
            command = replace(command, env=env, argv=_without_callers_credentials(command.argv, env))
            self.log(host, f"Invoking script with the following command: {shlex.join(_without_env_prefix(command.argv))}")
            if not unbound:  # script mode keeps its working directory (the host's code directory)
                cwd = WORKING_DIRECTORY if self.container is not None else command.cwd
                hosts = sagemaker_mounts.hosts_file(self.root / "hosts", self.mode.hosts)
                command = replace(command, argv=sagemaker_mounts.bound(command.argv, self.layouts[host].ml, cwd, hosts))
            commands.append(command)
        return commands

    def failure_message(self, exit_codes: list[int | None], node: int) -> str:
        host = list(self.layouts)[node]
        failure_file = self.layouts[host].output_dir / "failure"
        if failure_file.is_file() and failure_file.read_text().strip():
            return "AlgorithmError: " + failure_file.read_text().strip()
        code = exit_codes[node] if node < len(exit_codes) else None
        return f"AlgorithmError: {self.last_error_line(node) or 'the training script failed'}, exit code: {code}"


def _without_callers_credentials(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` run without the credentials of the emulator's own process (``env -u``)."""
    leaked = [name for name in CALLER_IDENTITY if name in os.environ and name not in env]
    if not leaked:
        return argv
    unset = [a for name in leaked for a in ("-u", name)]
    return ["env", *unset, *argv[1:]] if argv and argv[0] == "env" else ["env", *unset, *argv]


def _without_env_prefix(argv: list[str]) -> list[str]:
    """``argv`` without the ``env -u NAME... NAME=VALUE...`` that keeps the emulator's own variables
    (and its caller's identity) from the job."""
    if not argv or argv[0] != "env":
        return argv
    start = 1
    while start + 1 < len(argv) and argv[start] == "-u":
        start += 2
    while start < len(argv) and "=" in argv[start] and not argv[start].startswith(("-", "/")):
        start += 1
    return argv[start:]


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()
