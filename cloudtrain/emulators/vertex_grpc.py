"""The Vertex AI emulator's JobService and PipelineService over gRPC, the transport
``google-cloud-aiplatform`` uses by default (``aiplatform.CustomJob(...).run()``,
``CustomTrainingJob(...).run()``, ``aiplatform_v1.JobServiceClient()``).

It serves ``google.cloud.aiplatform.v1.JobService`` (the API version the SDK's default
``compat.DEFAULT_VERSION`` selects) with ``CreateCustomJob``, ``GetCustomJob``, ``ListCustomJobs``,
``CancelCustomJob`` and ``DeleteCustomJob`` (and the same for ``HyperparameterTuningJob``,
:mod:`cloudtrain.emulators.vertex_tuning_routes`), ``google.cloud.aiplatform.v1.PipelineService`` with the
same five for ``TrainingPipeline`` (:mod:`cloudtrain.emulators.vertex_pipelines`), and
``google.logging.v2.LoggingServiceV2.ListLogEntries`` (what ``google.cloud.logging.Client().list_entries``
calls), over the same operations as the REST routes; messages are (de)serialized with the SDKs' own
proto-plus types. Deletes answer a finished long-running operation. Other methods answer UNIMPLEMENTED.

The server itself is plaintext on 127.0.0.1; TLS is :mod:`cloudtrain.emulators.vertex_front`'s, with
a certificate from :class:`Authority` for ``aiplatform.googleapis.com`` and ``*.googleapis.com``
(which covers ``us-central1-aiplatform.googleapis.com``, the other regional hosts,
``logging.googleapis.com`` and ``secretmanager.googleapis.com``, whose service
:mod:`cloudtrain.emulators.gcp_secret_manager` adds to the same server; gRPC accepts only
whole-label wildcards). A client reaches it by its real hostname through the CONNECT proxy (:mod:`cloudtrain.emulators.proxy`; gRPC honours ``grpc_proxy``)
and trusts it through ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``, a bundle of certifi's roots plus the CA,
so other gRPC programs in the shell still reach Google. Bearer tokens are accepted and not checked.

Faults apply as over REST (operation names ``JobService.<Method>``, ``PipelineService.<Method>``,
``Logging.ListLogEntries``): ``throttle`` answers RESOURCE_EXHAUSTED, ``server_error`` UNAVAILABLE;
``drop_after`` processes the call and then answers UNAVAILABLE (a handler cannot drop one call's
connection), so the client retries a call that took effect; ``drop_before`` answers UNAVAILABLE
without processing it. Calls with the ``x-cloudtrain-emulator-internal`` metadata key are exempt.
"""

from __future__ import annotations

import json
import os
from concurrent import futures
from pathlib import Path
from typing import Any, Callable

from cloudtrain.emulators.common import INTERNAL_HEADER, Faults
from cloudtrain.emulators.vertex_validation import ApiError

SERVICE = "google.cloud.aiplatform.v1.JobService"
PIPELINE_SERVICE = "google.cloud.aiplatform.v1.PipelineService"
LOGGING_SERVICE = "google.logging.v2.LoggingServiceV2"
CERTIFICATE_NAMES = ("aiplatform.googleapis.com", "*.googleapis.com")
#: HTTP status of an ``ApiError`` -> gRPC status code name.
_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def without_fork_handlers() -> None:
    """The emulator forks (pip, replicas) while the server's threads run; gRPC's fork handlers have
    nothing to do for a child that execs at once, and log a line per fork. gRPC reads this when it is
    first imported, so it holds where the emulator is the process's first user of gRPC."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


class Authority:
    """The emulator's certificate authority, a server certificate for :data:`CERTIFICATE_NAMES`, and
    the roots bundle (certifi's roots + this CA) written to ``directory``."""

    def __init__(self, directory: Path) -> None:
        import certifi
        import trustme

        self.ca = trustme.CA(organization_name="cloudtrain Vertex AI emulator")
        self.certificate = self.ca.issue_cert(*CERTIFICATE_NAMES)
        directory.mkdir(parents=True, exist_ok=True)
        self.bundle_path = directory / "vertex-emulator-roots.pem"
        self.bundle_path.write_bytes(Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + self.ca.cert_pem.bytes())

    def server_credentials(self) -> Any:
        import grpc

        chain = b"".join(blob.bytes() for blob in self.certificate.cert_chain_pems)
        return grpc.ssl_server_credentials([(self.certificate.private_key_pem.bytes(), chain)])


class GrpcJobService:
    """The generic gRPC handlers of :data:`SERVICE` and :data:`PIPELINE_SERVICE` over ``service`` (a
    ``vertex.JobService``, with its ``pipelines``)."""

    def __init__(self, service: Any, faults: Faults) -> None:
        self.service, self.faults = service, faults

    def _call(self, service: str, method: str, work: Callable[[Any], bytes]) -> Callable[[Any, Any], bytes]:
        import grpc

        def handle(request: Any, context: Any) -> bytes:
            internal = any(key == INTERNAL_HEADER.lower() for key, _ in context.invocation_metadata() or ())
            operation = f"{'Logging' if service == LOGGING_SERVICE else service.rsplit('.', 1)[-1]}.{method}"
            rule = None if internal else self.faults.take(operation)
            if rule is not None and rule.kind == "throttle":
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"Quota exceeded for aiplatform.googleapis.com ({operation}): too many requests; retry later")
            if rule is not None and rule.kind == "server_error":
                context.abort(grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable.")
            if rule is not None and rule.kind != "drop_after":  # drop_before and kinds added later: nothing takes effect
                context.abort(grpc.StatusCode.UNAVAILABLE, "The connection was closed before the call reached the service.")
            try:
                answer = work(request)
            except ApiError as error:
                context.abort(getattr(grpc.StatusCode, _CODES.get(error.code, "UNKNOWN")), error.message)
            except Exception as error:  # an emulator bug: answer as the service would
                context.abort(grpc.StatusCode.INTERNAL, f"emulator internal error: {type(error).__name__}: {error}")
            if rule is not None:  # drop_after: the call took effect
                context.abort(grpc.StatusCode.UNAVAILABLE, "The connection was closed before the response was sent.")
            return answer

        return handle

    # -- the methods: request message in, serialized response out ----------------------------------

    def _serialized(self, job: Any) -> bytes:
        from google.cloud import aiplatform_v1

        with self.service.lock:
            return aiplatform_v1.CustomJob.serialize(job)

    def create(self, request: Any) -> bytes:
        run = self.service.create_custom_job(request.parent, request.custom_job)
        answer = self._serialized(run.job)  # as created (QUEUED), before the run moves it on
        run.start()
        return answer

    def get(self, request: Any) -> bytes:
        return self._serialized(self.service.run_named(request.name).job)

    def list(self, request: Any) -> bytes:
        from google.cloud import aiplatform_v1

        page, token = self.service.list_custom_jobs(request.parent, request.filter, request.page_size, request.page_token)
        with self.service.lock:
            return aiplatform_v1.ListCustomJobsResponse.serialize(
                aiplatform_v1.ListCustomJobsResponse(custom_jobs=page, next_page_token=token))

    def cancel(self, request: Any) -> bytes:
        self.service.cancel_custom_job(request.name)
        return b""  # google.protobuf.Empty

    def delete(self, request: Any) -> bytes:
        from google.longrunning import operations_pb2

        return operations_pb2.Operation(name=self.service.delete_custom_job(request.name), done=True).SerializeToString()

    def create_pipeline(self, request: Any) -> bytes:
        from google.cloud import aiplatform_v1

        pipeline, run = self.service.pipelines.create(request.parent, request.training_pipeline)
        with self.service.lock:
            answer = aiplatform_v1.TrainingPipeline.serialize(pipeline)
        run.start()
        return answer

    def get_pipeline(self, request: Any) -> bytes:
        from google.cloud import aiplatform_v1

        with self.service.lock:
            return aiplatform_v1.TrainingPipeline.serialize(self.service.pipelines.get(request.name))

    def list_pipelines(self, request: Any) -> bytes:
        from google.cloud import aiplatform_v1

        page, token = self.service.pipelines.list(request.parent, request.page_size, request.page_token)
        with self.service.lock:
            return aiplatform_v1.ListTrainingPipelinesResponse.serialize(
                aiplatform_v1.ListTrainingPipelinesResponse(training_pipelines=page, next_page_token=token))

    def cancel_pipeline(self, request: Any) -> bytes:
        self.service.pipelines.cancel(request.name)
        return b""

    def delete_pipeline(self, request: Any) -> bytes:
        from google.longrunning import operations_pb2

        return operations_pb2.Operation(name=self.service.pipelines.delete(request.name), done=True).SerializeToString()

    def list_log_entries(self, request: Any) -> bytes:
        from google.cloud.logging_v2.types import ListLogEntriesRequest, ListLogEntriesResponse

        from cloudtrain.emulators.vertex_logging import InvalidRequest

        body = json.loads(ListLogEntriesRequest.to_json(request, indent=None))
        try:
            answer = self.service.logs.list(body)
        except InvalidRequest as error:
            raise ApiError(400, str(error)) from None
        return ListLogEntriesResponse.serialize(ListLogEntriesResponse.from_json(json.dumps(answer)))

    def handlers(self) -> tuple[Any, ...]:
        """The generic handlers of the JobService, the PipelineService and (when google-cloud-logging
        is installed) Cloud Logging."""
        without_fork_handlers()
        import grpc
        from google.cloud import aiplatform_v1 as v1

        from cloudtrain.emulators.vertex_tuning_routes import grpc_methods

        services = {
            SERVICE: {"CreateCustomJob": (self.create, v1.CreateCustomJobRequest),
                      "GetCustomJob": (self.get, v1.GetCustomJobRequest),
                      "ListCustomJobs": (self.list, v1.ListCustomJobsRequest),
                      "CancelCustomJob": (self.cancel, v1.CancelCustomJobRequest),
                      "DeleteCustomJob": (self.delete, v1.DeleteCustomJobRequest),
                      **grpc_methods(self.service)},  # HyperparameterTuningJob
            PIPELINE_SERVICE: {"CreateTrainingPipeline": (self.create_pipeline, v1.CreateTrainingPipelineRequest),
                               "GetTrainingPipeline": (self.get_pipeline, v1.GetTrainingPipelineRequest),
                               "ListTrainingPipelines": (self.list_pipelines, v1.ListTrainingPipelinesRequest),
                               "CancelTrainingPipeline": (self.cancel_pipeline, v1.CancelTrainingPipelineRequest),
                               "DeleteTrainingPipeline": (self.delete_pipeline, v1.DeleteTrainingPipelineRequest)},
        }
        try:
            from google.cloud.logging_v2.types import ListLogEntriesRequest
        except ImportError:  # the gcp extra without logging: the service answers UNIMPLEMENTED
            pass
        else:
            services[LOGGING_SERVICE] = {"ListLogEntries": (self.list_log_entries, ListLogEntriesRequest)}
        return tuple(grpc.method_handlers_generic_handler(service, {
            name: grpc.unary_unary_rpc_method_handler(self._call(service, name, work), request_deserializer=message.deserialize)
            for name, (work, message) in methods.items()}) for service, methods in services.items())


class GrpcServer:
    """A gRPC server for ``handlers`` on ``host`` at a free port: TLS with ``credentials``
    (:meth:`Authority.server_credentials`), plaintext without."""

    def __init__(self, handlers: tuple[Any, ...], host: str = "127.0.0.1", credentials: Any = None) -> None:
        self.handlers, self.host, self.credentials = handlers, host, credentials
        self.port = 0
        self._server: Any = None

    def start(self) -> "GrpcServer":
        without_fork_handlers()
        import grpc

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="vertex-grpc"))
        self._server.add_generic_rpc_handlers(self.handlers)
        address = f"{self.host}:0"
        self.port = (self._server.add_secure_port(address, self.credentials) if self.credentials is not None
                     else self._server.add_insecure_port(address))
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port
