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
training does.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import sys
import tarfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtrain.emulators.common import DirectoryMirror, Faults, NodeProcesses
from cloudtrain.emulators.sagemaker_toolkit import HostLayout, ScriptMode
from cloudtrain.providers.process import free_port

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")
_moto_lock = threading.Lock()  # moto's logs backend is not thread-safe


class ClientFailure(Exception):
    """A problem with the request or its data: the job fails with "ClientError: ..."."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ClientFailure(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


@dataclass
class JobServices:
    """What a job needs from its emulator: the internal S3 client, faults, timings."""

    s3: Any
    faults: Faults
    grace_seconds: float = 10.0
    poll_seconds: float = 0.1


class TrainingJobRun:
    """Runs one created job in a thread and keeps moto's record of it (``fake``) up to date."""

    def __init__(self, request: dict[str, Any], fake: Any, account: str, region: str, root: Path,
                 services: JobServices) -> None:
        self.name = request["TrainingJobName"]
        self.request, self.fake, self.account, self.region, self.root = request, fake, account, region, root
        self.services = services
        self.mode = ScriptMode(request, fake.arn, region)
        self.layouts = {h: HostLayout(root / h, self.mode.checkpoint_local_path) for h in self.mode.hosts}
        self.interruptions = 0
        self._lock = threading.Lock()
        self._stop_requested = False
        self._runtime_exceeded = False
        self._interrupting = False
        self._nodes: NodeProcesses | None = None
        self._streams: dict[str, str] = {}
        self._last_stamp: dict[str, int] = {}
        self._tails = {h: deque(maxlen=40) for h in self.mode.hosts}
        self._metrics: dict[str, float] = {}
        self._metric_patterns = [(m["Name"], re.compile(m["Regex"])) for m in
                                 (request.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []]
        self._training_seconds = 0.0
        self._failure: str | None = None
        self.thread = threading.Thread(target=self.run, name=f"sagemaker-job-{self.name}", daemon=True)
        now = _now()
        spec = dict(request.get("AlgorithmSpecification") or {})
        fake.__dict__.update(  # moto's describe shows every non-None attribute
            training_job_status="InProgress", secondary_status="Starting", algorithm_specification=spec,
            environment=dict(request["Environment"]) if request.get("Environment") else None,
            secondary_status_transitions=[{"Status": "Starting", "StartTime": now, "StatusMessage": "Launching requested ML instances"}],
            model_artifacts=None, failure_reason=None, training_start_time=None, training_end_time=None,
            final_metric_data_list=None, training_time_in_seconds=None, billable_time_in_seconds=None,
            creation_time=now, last_modified_time=now)

    # -- state --------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self.fake.training_job_status

    def _transition(self, secondary: str, message: str, status: str = "InProgress") -> None:
        with self._lock:
            if self.fake.training_job_status in TERMINAL or (self._stop_requested and status == "InProgress"):
                return
            now = _now()
            history = list(self.fake.secondary_status_transitions)
            if history and "EndTime" not in history[-1]:
                history[-1] = {**history[-1], "EndTime": now}
            entry = {"Status": secondary, "StartTime": now, "StatusMessage": message}
            if status in TERMINAL:
                entry["EndTime"] = now
            self.fake.secondary_status_transitions = history + [entry]
            self.fake.training_job_status, self.fake.secondary_status = status, secondary
            self.fake.last_modified_time = now

    def request_stop(self) -> bool:
        """StopTrainingJob: False when the job already ended."""
        with self._lock:
            if self.fake.training_job_status in TERMINAL:
                return False
            first = not self._stop_requested
            self._stop_requested = True
            nodes = self._nodes
        if first:
            self._transition("Stopping", "Stopping the training job", status="Stopping")
        if nodes is not None:
            nodes.cancel()
        return True

    def _end(self, status: str, secondary: str, message: str, failure: str | None = None) -> None:
        now = _now()
        self.fake.__dict__.update(training_end_time=now, failure_reason=failure,
                                  training_time_in_seconds=max(1, round(self._training_seconds)),
                                  billable_time_in_seconds=max(1, round(self._training_seconds)),
                                  final_metric_data_list=[{"MetricName": n, "Value": v, "Timestamp": now}
                                                          for n, v in self._metrics.items()] or None)
        self._transition(secondary, message, status=status)

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

        with _moto_lock:
            stamp = max(int(time.time() * 1000), self._last_stamp.get(host, 0))
            self._last_stamp[host] = stamp
            logs_backends[self.account][self.region].put_log_events(
                LOG_GROUP, self._streams[host], [{"timestamp": stamp, "message": message}])

    def _on_line(self, node: int, text: str) -> None:
        host = self.mode.hosts[min(node, len(self.mode.hosts) - 1)]
        self._tails[host].append(text)
        for name, pattern in self._metric_patterns:
            match = pattern.search(text)
            if match:
                try:
                    self._metrics[name] = float(match.group(1))
                except (IndexError, ValueError):
                    pass
        self.log(host, text)

    # -- storage ------------------------------------------------------------------------------

    def _download_prefix(self, uri: str, destination: Path, shard: tuple[int, int] = (0, 1)) -> int:
        bucket, prefix = split_s3_uri(uri)
        s3 = self.services.s3
        keys = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        except s3.exceptions.NoSuchBucket:
            raise ClientFailure(f"Data download failed: the bucket {bucket} does not exist") from None
        keys = sorted(keys)[shard[0]::shard[1]]
        for key in keys:  # placed as the SageMaker SDK's local mode places them
            relative = Path(key).name if key == prefix else key[len(prefix):].lstrip("/")
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
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
        self.services.s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    def _checkpoint_uri(self) -> str | None:
        uri = (self.request.get("CheckpointConfig") or {}).get("S3Uri")
        return uri.rstrip("/") if uri else None

    def _upload_checkpoint(self, relative: str, path: Path) -> None:
        uri = self._checkpoint_uri()
        if uri:
            bucket, prefix = split_s3_uri(uri)
            self.services.s3.upload_file(str(path), bucket, f"{prefix}/{relative}" if prefix else relative)

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._open_streams()
            self._transition("Downloading", "Downloading input data")
            self.fake.training_start_time = _now()
            self._prepare_hosts()
            outcome = "stopped"
            while not self._stop_requested:
                self._transition("Training", "Training image download completed. Training in progress.")
                outcome = self._train_once()
                if outcome != "interrupted":
                    break
                self._transition("Interrupted", "The spot instance was interrupted; restarting from the last checkpoint")
                self._transition("Restarting", "Restarting the training job on new spot capacity")
                self._open_streams()
                self._prepare_hosts(restart=True)
            self._finish(outcome)
        except ClientFailure as error:
            self._end("Failed", "Failed", "Training job failed", failure=f"ClientError: {error}")
        except Exception as error:  # an emulator bug: show it where the user looks
            for line in traceback.format_exc().splitlines():
                self._safe_log(f"cloudtrain-emulator internal error: {line}")
            self._end("Failed", "Failed", "Training job failed", failure=f"InternalServerError: {type(error).__name__}: {error}")

    def _safe_log(self, message: str) -> None:
        try:
            self.log(self.mode.hosts[0], message)
        except Exception:
            pass

    def _prepare_hosts(self, restart: bool = False) -> None:
        if not self.mode.program or not self.mode.submit_directory:
            raise ClientFailure("the emulator runs script-mode jobs: HyperParameters sagemaker_program and "
                                "sagemaker_submit_directory are required")
        bundle = self.root / "sourcedir.tar.gz"
        if not restart:
            bucket, key = split_s3_uri(self.mode.submit_directory)
            try:
                self.services.s3.download_file(bucket, key, str(bundle))
            except Exception as error:
                raise ClientFailure(f"could not download the code bundle {self.mode.submit_directory}: {error}") from None
        for index, (host, layout) in enumerate(self.layouts.items()):
            if restart:  # a fresh instance: only the code and the input data are laid out again as they were
                for directory in (layout.model_dir, layout.output_dir, layout.checkpoint_dir):
                    shutil.rmtree(directory, ignore_errors=True)
            layout.make()
            if not restart:
                with tarfile.open(bundle) as archive:
                    archive.extractall(layout.code, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
                self._download_channels(layout, index)
            self.mode.write_config(layout, host)
            if self._checkpoint_uri():
                self._download_prefix(self._checkpoint_uri() + "/", layout.checkpoint_dir)

    def _download_channels(self, layout: HostLayout, index: int) -> None:
        for channel in self.mode.channels:
            source = channel.get("DataSource", {}).get("S3DataSource")
            if not source:
                raise ClientFailure(f"channel {channel['ChannelName']}: only S3DataSource channels are emulated")
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise ClientFailure(f"channel {channel['ChannelName']}: S3DataType {source['S3DataType']} is not emulated")
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
            destination = layout.channel_dir(channel["ChannelName"])
            destination.mkdir(parents=True, exist_ok=True)
            self._download_prefix(source["S3Uri"], destination, (index, len(self.layouts)) if sharded else (0, 1))

    def _train_once(self) -> str:
        port = free_port()
        commands = [self.mode.node_command(layout, host, port) for host, layout in self.layouts.items()]
        for host, command in zip(self.layouts, commands):
            shown = command.argv[command.argv.index(sys.executable):]  # without the `env -u ...` prefix
            self.log(host, f"Invoking script with the following command: {shlex.join(shown)}")
        nodes = NodeProcesses(self.root / "run", commands, self.services.grace_seconds, self._on_line)
        mirror = DirectoryMirror([l.checkpoint_dir for l in self.layouts.values()], self._upload_checkpoint)
        with self._lock:
            self._nodes, stop = nodes, self._stop_requested
        if stop:
            nodes.cancel()
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(nodes, mirror, finished), daemon=True)
        watcher.start()
        max_runtime = (self.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        timer = threading.Timer(float(max_runtime), self._exceed_runtime, args=(nodes,)) if max_runtime else None
        if timer:
            timer.daemon = True
            timer.start()
        started = time.monotonic()
        try:
            result = nodes.run()
        finally:
            self._training_seconds += time.monotonic() - started
            finished.set()
            watcher.join()
            if timer:
                timer.cancel()
            with self._lock:
                self._nodes = None
        mirror.sync(final=True)
        if self._interrupting:
            self._interrupting = False
            return "interrupted"
        if self._stop_requested:
            return "stopped"
        if self._runtime_exceeded:
            return "max_runtime"
        if result.get("state") == "SUCCEEDED":
            return "completed"
        self._failure = self._failure_reason(result.get("exit_codes") or [])
        return "failed"

    def _watch(self, nodes: NodeProcesses, mirror: DirectoryMirror, finished: threading.Event) -> None:
        while not finished.wait(self.services.poll_seconds):
            uploaded = mirror.sync()
            if (uploaded and self.request.get("EnableManagedSpotTraining") and not self.interruptions
                    and not self._stop_requested and self.services.faults.take_preemption(self.name)):
                self.interruptions += 1
                self._interrupting = True
                for host in self.layouts:
                    self.log(host, "cloudtrain-emulator: spot capacity reclaimed: interrupting the training job")
                nodes.cancel()
                return

    def _exceed_runtime(self, nodes: NodeProcesses) -> None:
        self._runtime_exceeded = True
        nodes.cancel()

    def _failure_reason(self, codes: list[int | None]) -> str:
        hosts = list(self.layouts)
        failed = [i for i, c in enumerate(codes) if c not in (0, None)]
        own = [i for i in failed if codes[i] > 0] or failed or [0]  # others were ended because one failed
        host = hosts[own[0]]
        failure_file = self.layouts[host].output_dir / "failure"
        if failure_file.is_file() and failure_file.read_text().strip():
            return "AlgorithmError: " + failure_file.read_text().strip()
        tail = [l for l in self._tails[host] if l.strip()]
        line = next((l for l in reversed(tail) if "Error" in l or "Exception" in l), tail[-1] if tail else "")
        code = codes[own[0]] if own[0] < len(codes) else None
        return f"AlgorithmError: {line.strip() or 'the training script failed'}, exit code: {code}"

    def _finish(self, outcome: str) -> None:
        if outcome == "failed":
            self._upload_outputs(model=False)
            self._end("Failed", "Failed", "Training job failed", failure=self._failure)
            return
        self._transition("Uploading", "Uploading generated training model")
        self._upload_outputs(model=True)
        if outcome == "completed" and not self._stop_requested:
            self._end("Completed", "Completed", "Training job completed")
        elif outcome == "max_runtime":
            self._end("Stopped", "MaxRuntimeExceeded", "Training job stopped: MaxRuntimeInSeconds exceeded")
        else:
            self._end("Stopped", "Stopped", "Training job stopped")

    def _upload_outputs(self, model: bool) -> None:
        base = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{self.name}/output"
        first = next(iter(self.layouts.values()))
        self._upload_tar([first.output_data_dir], f"{base}/output.tar.gz")
        if model:
            self._upload_tar([l.model_dir for l in self.layouts.values()], f"{base}/model.tar.gz")
            self.fake.model_artifacts = {"S3ModelArtifacts": f"{base}/model.tar.gz"}

    def cancel(self) -> None:
        """Emulator shutdown: end the processes (as a stop would)."""
        self.request_stop()


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()


