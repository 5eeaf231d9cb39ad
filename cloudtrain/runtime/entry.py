"""The entry shim that cloud jobs run: ``python cloudtrain/runtime/entry.py`` inside the code bundle.

Clouds start a program their own way (SageMaker's training toolkit appends every hyperparameter as
``--key value``; Vertex and Azure ML run a command line). This shim makes every cloud run the
entrypoint the same way the local executor does: with the rendered arguments only (the spec's
``args`` and the hyperparameters as flags, :mod:`cloudtrain.runtime.invocation`), their path
placeholders resolved here from the runtime context, the code directory first on ``sys.path``,
and secrets from the cloud's secret store in the environment. It reads (from the job's
environment, as rendered in its request):

- ``CLOUDTRAIN_ENTRYPOINT`` (a script path inside the bundle; ``.sh`` runs under bash),
  ``CLOUDTRAIN_MODULE``, or ``CLOUDTRAIN_COMMAND`` (a shell command, run under bash);
- ``CLOUDTRAIN_ARGS``: a JSON list of arguments, and ``CLOUDTRAIN_HP_FLAGS=1`` to append the
  job's hyperparameters as ``--name value`` flags; ``${{hyperparameters.NAME}}`` placeholders and
  these flags take the job's own values (:func:`job_hyperparameters`: a tuning trial's);
- ``CLOUDTRAIN_SETUP``: a JSON list of shell commands, and ``CLOUDTRAIN_REQUIREMENTS``: a
  requirements file to ``pip install -r``; both run once per node (the first process to take the
  node's set-up lock runs them; under torchrun the others wait for it) before the entrypoint;
- the other clouds' script variables (``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>``, ``AIP_MODEL_DIR``...),
  set from the runtime context where the cloud does not set them (:mod:`cloudtrain.runtime.variables`);
- ``CLOUDTRAIN_SECRETS``: a JSON map ``NAME -> {"aws_secret": id}`` (or ``gcp_secret`` /
  ``azure_key_vault``) resolved here, inside the job, so no value travels in the request;
- ``CLOUDTRAIN_OBJECTIVE``: in a tuning trial, the sweep's objective metric; the main process then
  runs the program as a child and relays what it reports of the metric through MLflow or
  ``cloudml-hypertune`` to where the cloud's tuning service reads it (:mod:`cloudtrain.runtime.relay`).

Stdlib only, except the cloud SDK that a secret reference needs, which the cloud's framework
containers provide.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

CODE_ROOT = Path(__file__).resolve().parents[2]


def resolve_secret(ref: dict[str, str]) -> str:
    if "aws_secret" in ref:
        import boto3  # present in SageMaker's framework containers

        return boto3.client("secretsmanager").get_secret_value(SecretId=ref["aws_secret"])["SecretString"]
    if "gcp_secret" in ref:
        from google.cloud import secretmanager  # type: ignore[attr-defined]

        return secretmanager.SecretManagerServiceClient().access_secret_version(name=ref["gcp_secret"]).payload.data.decode()
    if "azure_key_vault" in ref:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        vault, _, name = ref["azure_key_vault"].partition("/secrets/")
        return SecretClient(vault_url=vault, credential=DefaultAzureCredential()).get_secret(name.split("/")[0]).value
    raise SystemExit(f"cloudtrain entry: unsupported secret reference {sorted(ref)}")


def set_up_node(job_id: str) -> None:
    """Run the set-up commands and install the requirements, once on this node."""
    import fcntl
    import subprocess
    import tempfile

    setup = json.loads(os.environ.get("CLOUDTRAIN_SETUP") or "[]")
    requirements = os.environ.get("CLOUDTRAIN_REQUIREMENTS")
    if not setup and not requirements:
        return
    marker = Path(tempfile.gettempdir()) / f"cloudtrain-setup-{job_id or 'job'}"
    with open(f"{marker}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other processes of this node wait here
        if Path(f"{marker}.done").exists():
            return
        steps = [["bash", "-c", command] for command in setup]
        if requirements:
            steps.insert(0, [sys.executable, "-m", "pip", "install", "--no-input", "-r", requirements])
        for step in steps:
            print(f"cloudtrain: set-up: {' '.join(step[2:] if step[0] == 'bash' else step[1:])}", flush=True)
            code = subprocess.call(step, cwd=CODE_ROOT)
            if code != 0:
                raise SystemExit(f"cloudtrain entry: the set-up step failed with exit code {code}: {step[-1]}")
        Path(f"{marker}.done").write_text("done\n")


def job_hyperparameters(argv: list[str]) -> dict:
    """The job's hyperparameters: the runtime context's (``SM_HPS`` on SageMaker, which holds a
    tuning trial's values), with the values a tuning service put on this program's command line
    (Vertex AI's ``--name=value``; SageMaker's toolkit's ``--name value``) winning. The result is
    exported as ``CLOUDTRAIN_HPS`` too, so ``context().hp()`` in the script agrees with its flags."""
    from cloudtrain.runtime.context import context, decode_hyperparameters
    from cloudtrain.runtime.invocation import argv_values

    hyperparameters = dict(context().hyperparameters)
    given = argv_values(argv, hyperparameters)
    if given:
        hyperparameters.update(decode_hyperparameters(given))
        os.environ["CLOUDTRAIN_HPS"] = json.dumps(hyperparameters)
        if "SM_HPS" in os.environ:
            os.environ["SM_HPS"] = json.dumps(hyperparameters)
    return hyperparameters


def main() -> None:
    if str(CODE_ROOT) not in sys.path:
        sys.path.append(str(CODE_ROOT))  # the bundle's own cloudtrain.runtime
    from cloudtrain.runtime.context import context, read_context
    from cloudtrain.runtime.invocation import hyperparameter_flags, resolve, spec_values, values_of
    from cloudtrain.runtime.variables import missing_variables

    secrets = json.loads(os.environ.get("CLOUDTRAIN_SECRETS") or "{}")
    for name, ref in secrets.items():
        os.environ[name] = resolve_secret(ref)
    hyperparameters = job_hyperparameters(sys.argv[1:])
    os.environ.update(missing_variables(read_context(os.environ), os.environ, hyperparameters))
    values = {**values_of(context()), **spec_values(hyperparameters, os.environ.get("CLOUDTRAIN_JOB_ID", ""))}
    args = [resolve(arg, values) for arg in json.loads(os.environ.get("CLOUDTRAIN_ARGS") or "[]")]
    if os.environ.get("CLOUDTRAIN_HP_FLAGS") == "1":
        args += hyperparameter_flags(hyperparameters)
    os.chdir(CODE_ROOT)
    set_up_node(os.environ.get("CLOUDTRAIN_JOB_ID", ""))
    command = os.environ.get("CLOUDTRAIN_COMMAND")
    module = os.environ.get("CLOUDTRAIN_MODULE")
    entrypoint = os.environ.get("CLOUDTRAIN_ENTRYPOINT", "")
    sys.stdout.flush()
    objective = os.environ.get("CLOUDTRAIN_OBJECTIVE")
    if objective and context().is_main:
        from cloudtrain.runtime.relay import prepare, run_relaying

        sources = prepare(context().environment)
        if sources:
            raise SystemExit(run_relaying(program(command and resolve(command, values), module, entrypoint, args),
                                          objective, sources))
    if command:
        os.execvp("bash", ["bash", "-c", resolve(command, values), "bash", *args])
    if module:
        sys.path.remove(str(CODE_ROOT))
        sys.path.insert(0, str(CODE_ROOT))
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    script = CODE_ROOT / entrypoint
    if script.suffix == ".sh":
        os.execvp("bash", ["bash", str(script), *args])
    sys.path.remove(str(CODE_ROOT))
    sys.path[0] = str(script.parent)  # as `python script.py` would have it
    sys.path.insert(1, str(CODE_ROOT))
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


def program(command: str | None, module: str | None, entrypoint: str, args: list[str]) -> list[str]:
    """The command line that runs the job's program in a child process, as :func:`main` runs it in
    this one (from the code directory, with the bundle's ``cloudtrain`` importable)."""
    if command:
        return ["bash", "-c", command, "bash", *args]
    if module:
        return [sys.executable, "-m", module, *args]  # the code directory (the working one) first on sys.path
    script = CODE_ROOT / entrypoint
    if script.suffix == ".sh":
        return ["bash", str(script), *args]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CODE_ROOT), os.environ.get("PYTHONPATH")]))
    return [sys.executable, str(script), *args]


if __name__ == "__main__":
    main()
