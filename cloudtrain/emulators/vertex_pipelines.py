"""The Vertex AI emulator's PipelineService for custom training: what ``aiplatform.CustomTrainingJob``,
``CustomContainerTrainingJob`` and ``CustomPythonPackageTrainingJob`` create.

A ``TrainingPipeline`` whose ``training_task_definition`` is the custom task schema
(:data:`CUSTOM_TASK`) gets a backing ``CustomJob`` built from its ``training_task_inputs`` (a
``CustomJobSpec`` as JSON: worker pools, base output directory, scheduling...), created and run
through the same JobService operations as a CustomJob; ``training_task_metadata.backingCustomJob``
names it, as on Vertex. The pipeline's state, times and error follow the backing job's
(``JOB_STATE_X`` -> ``PIPELINE_STATE_X``); cancelling the pipeline cancels the job.

Not emulated, refused with INVALID_ARGUMENT naming the field: ``model_to_upload`` (there is no Model
Registry: give no ``model_serving_container_image_uri``), ``input_data_config`` (managed datasets)
and other training task definitions (AutoML). Routes, over REST and gRPC
(``google.cloud.aiplatform.v1.PipelineService``): Create, Get, List, Cancel, Delete.
"""

from __future__ import annotations

import json
import random
from typing import Any

from cloudtrain.emulators.vertex_jobs import TERMINAL, now
from cloudtrain.emulators.vertex_validation import ApiError, list_page

CUSTOM_TASK = "gs://google-cloud-aiplatform/schema/trainingjob/definition/custom_task_1.0.0.yaml"
SERVICE = "google.cloud.aiplatform.v1.PipelineService"


class TrainingPipelines:
    """The pipelines of one ``vertex.JobService`` (``service``), whose lock guards them too."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.pipelines: dict[str, Any] = {}  # name -> aiplatform_v1.TrainingPipeline
        self.backing: dict[str, str] = {}  # pipeline name -> custom job name

    def create(self, parent: str, pipeline: Any) -> tuple[Any, Any]:
        """(the pipeline as created, the backing job's run to ``start()`` once it is answered)."""
        from google.cloud import aiplatform_v1

        if pipeline.training_task_definition != CUSTOM_TASK:
            raise ApiError(400, f"training_task_definition {pipeline.training_task_definition!r} is not emulated: "
                                f"the emulator runs custom training ({CUSTOM_TASK})")
        if "model_to_upload" in pipeline:
            raise ApiError(400, "TrainingPipeline.model_to_upload is not emulated (no Model Registry): "
                                "train without model_serving_container_image_uri")
        if "input_data_config" in pipeline:
            raise ApiError(400, "TrainingPipeline.input_data_config (managed datasets) is not emulated")
        if not pipeline.display_name:
            raise ApiError(400, "TrainingPipeline.display_name is required.")
        inputs = json.loads(aiplatform_v1.TrainingPipeline.to_json(pipeline, indent=None)).get("trainingTaskInputs") or {}
        try:
            spec = aiplatform_v1.CustomJobSpec.from_json(json.dumps(inputs), ignore_unknown_fields=False)
        except Exception as error:
            raise ApiError(400, f"training_task_inputs is not a valid custom task: {error}") from None
        job = aiplatform_v1.CustomJob(display_name=f"{pipeline.display_name}-custom-job", job_spec=spec,
                                      labels=dict(pipeline.labels))
        run = self.service.create_custom_job(parent, job)
        pipeline.name = f"{parent}/trainingPipelines/{random.randrange(10**18, 10**19)}"
        pipeline.training_task_metadata = {"backingCustomJob": run.job.name}
        pipeline.state = aiplatform_v1.PipelineState.PIPELINE_STATE_QUEUED
        pipeline.create_time = pipeline.update_time = now()
        with self.service.lock:
            self.pipelines[pipeline.name] = pipeline
            self.backing[pipeline.name] = run.job.name
        return pipeline, run

    def get(self, name: str) -> Any:
        """The pipeline, brought up to date with its backing job (call under the service's lock to read it)."""
        from google.cloud import aiplatform_v1

        with self.service.lock:
            pipeline = self.pipelines.get(name)
            if pipeline is None:
                raise ApiError(404, f"The TrainingPipeline does not exist: {name}")
            run = self.service.runs.get(self.backing[name])
            if run is None:  # the backing job was deleted
                return pipeline
            job = run.job
            state = aiplatform_v1.PipelineState[job.state.name.replace("JOB_STATE_", "PIPELINE_STATE_")]
            if state != pipeline.state:
                pipeline.state, pipeline.update_time = state, now()
            if job.start_time and not pipeline.start_time:
                pipeline.start_time = job.start_time
            if job.end_time and not pipeline.end_time:
                pipeline.end_time = job.end_time
            if job.error.message:
                pipeline.error = {"code": job.error.code, "message": job.error.message}
            return pipeline

    def list(self, parent: str, page_size: int, page_token: str) -> tuple[list[Any], str]:
        with self.service.lock:
            names = [n for n in self.pipelines if n.startswith(parent + "/")]
        pipelines = sorted((self.get(n) for n in names), key=lambda p: p.create_time, reverse=True)
        return list_page(pipelines, page_size, page_token)

    def cancel(self, name: str) -> None:
        self.get(name)
        self.service.cancel_custom_job(self.backing[name])

    def delete(self, name: str) -> str:
        pipeline = self.get(name)
        if pipeline.state.name.replace("PIPELINE_STATE_", "JOB_STATE_") not in TERMINAL:
            raise ApiError(400, f"Cannot delete {name}: the pipeline is still running; cancel it first")
        with self.service.lock:
            del self.pipelines[name]
        return f"{name}/operations/{random.randrange(10**18)}"


class PipelineRoutes:
    """The REST routes of :class:`TrainingPipelines`, mixed into ``vertex.JobService`` (which has
    ``pipelines`` and ``_json_message``)."""

    pipelines: TrainingPipelines

    def _pipeline_json(self, pipeline: Any) -> bytes:
        from google.cloud import aiplatform_v1

        with self.pipelines.service.lock:
            return aiplatform_v1.TrainingPipeline.to_json(pipeline, use_integers_for_enums=False, indent=None).encode()

    def CreateTrainingPipeline(self, parent: str, args: Any, body: bytes) -> tuple[int, Any]:
        from google.cloud import aiplatform_v1

        try:
            pipeline = aiplatform_v1.TrainingPipeline.from_json(body or b"{}", ignore_unknown_fields=False)
        except Exception as error:
            raise ApiError(400, f"Invalid JSON payload received. {error}") from None
        pipeline, run = self.pipelines.create(parent, pipeline)
        answer = self._pipeline_json(pipeline)
        run.start()
        return 200, answer

    def GetTrainingPipeline(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        return 200, self._pipeline_json(self.pipelines.get(name))

    def ListTrainingPipelines(self, parent: str, args: Any, body: bytes) -> tuple[int, Any]:
        page, token = self.pipelines.list(parent, int(args.get("pageSize") or 100), args.get("pageToken") or "")
        answer: dict[str, Any] = {"trainingPipelines": [json.loads(self._pipeline_json(p)) for p in page]}
        if token:
            answer["nextPageToken"] = token
        return 200, answer

    def CancelTrainingPipeline(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        self.pipelines.cancel(name)
        return 200, {}

    def DeleteTrainingPipeline(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        return 200, {"name": self.pipelines.delete(name), "done": True}
