"""Local stand-ins for the clouds' training services, speaking their real wire protocols.

Each emulator is an HTTP server on 127.0.0.1 that the official SDK talks to unchanged; it stores
what the cloud would store, runs the job through :mod:`cloudtrain.providers.process` under that
cloud's environment contract, moves it through the cloud's states, writes its logs and model
where the cloud would, and can inject faults (throttling, 5xx, a connection dropped after a
create was accepted, spot preemption).

- :mod:`cloudtrain.emulators.sagemaker`: SageMaker on moto (``SageMakerEmulator``, ``serve_forever``).
- :mod:`cloudtrain.emulators.common`: the cloud-neutral parts (faults, the server thread, running
  a job's processes, syncing checkpoint directories).

Importing this package imports nothing heavy; each emulator module imports its cloud's fakes
(moto, ...) itself.
"""
