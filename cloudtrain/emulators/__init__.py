"""Local stand-ins for the clouds' training services, speaking their real wire protocols.

Each emulator is an HTTP server on 127.0.0.1 that the official SDK talks to unchanged; it stores
what the cloud would store, runs the job through :mod:`cloudtrain.providers.process` under that
cloud's environment contract, moves it through the cloud's states, writes its logs and model
where the cloud would, and can inject faults (throttling, 5xx, a connection dropped after a
create was accepted, spot preemption).

- :mod:`cloudtrain.emulators.sagemaker`: SageMaker on moto (``SageMakerEmulator``).
- :mod:`cloudtrain.emulators.azureml`: Azure ML (``AzureMLEmulator``), in-process or as an HTTPS server.
- :mod:`cloudtrain.emulators.vertex`: Vertex AI's JobService and Cloud Logging, with a Cloud Storage
  emulator (``VertexEmulator``).
- :mod:`cloudtrain.emulators.common`: the cloud-neutral parts (faults, the server thread, the
  :class:`~cloudtrain.emulators.common.Emulator` base with ``start`` / ``stop`` / ``endpoint_url``,
  and the one ``serve_forever(emulator)`` of ``cloudtrain emulator start``).
- :mod:`cloudtrain.emulators.job_runner`: the one run loop of every emulated job (states, cancel,
  time-out, preemption and restart, checkpoint mirroring), which each cloud's job module subclasses.

Importing this package imports nothing heavy; each emulator module imports its cloud's fakes
(moto, ...) itself.
"""
