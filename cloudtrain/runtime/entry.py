"""The entry shim that cloud jobs run: ``python cloudtrain/runtime/entry.py`` inside the code bundle.

Clouds start a program their own way (SageMaker's training toolkit appends every hyperparameter as
``--key value``; Vertex and Azure ML run a command line). This shim makes every cloud run the
entrypoint the same way the local executor does: with the spec's own ``args`` only, the code
directory first on ``sys.path``, and secrets from the cloud's secret store in the environment.
It reads (from the job's environment, as rendered in its request):

- ``CLOUDTRAIN_ENTRYPOINT`` (a script path inside the bundle) or ``CLOUDTRAIN_MODULE``;
- ``CLOUDTRAIN_ARGS``: a JSON list of arguments;
- ``CLOUDTRAIN_SECRETS``: a JSON map ``NAME -> {"aws_secret": id}`` (or ``gcp_secret`` /
  ``azure_key_vault``) resolved here, inside the job, so no value travels in the request.

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


def main() -> None:
    secrets = json.loads(os.environ.get("CLOUDTRAIN_SECRETS") or "{}")
    for name, ref in secrets.items():
        os.environ[name] = resolve_secret(ref)
    args = json.loads(os.environ.get("CLOUDTRAIN_ARGS") or "[]")
    module = os.environ.get("CLOUDTRAIN_MODULE")
    os.chdir(CODE_ROOT)
    if module:
        sys.path.insert(0, str(CODE_ROOT))
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    script = CODE_ROOT / os.environ["CLOUDTRAIN_ENTRYPOINT"]
    sys.path[0] = str(script.parent)  # as `python script.py` would have it
    sys.path.insert(1, str(CODE_ROOT))
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
