"""``cloudtrain doctor [--cloud C] [--offline]``: check that a cloud is set up for cloudtrain, one line per
check with the fix.

Offline: the config files are valid (the user config ``~/.config/cloudtrain/config.yaml`` and the
nearest ``cloudtrain.yaml``), and each cloud's settings, layered as a submission layers them (config
files, ``CLOUDTRAIN_*`` variables, the clouds' own variables), validate and name what a submission
needs. Online (skipped with ``--offline``): credentials are found, the cloud's endpoint answers within
a few seconds, the staging bucket and the role / workspace / compute / service account exist, and
quotas where the cloud's API tells them (SageMaker: Service Quotas; Azure ML: the region's compute
usages). Vertex AI quotas live in the Cloud Quotas API, which no installed SDK reaches: doctor says
so rather than guess. Every network call has a short deadline (:data:`DEADLINE_SECONDS`), so an
unreachable endpoint costs seconds, not a retry loop.

Which clouds: ``--cloud``, else every cloud with settings, else all three. Exit status 3 when a check
fails (warnings and skips do not fail). Emulators are honoured as the providers honour them
(``AWS_ENDPOINT_URL``, ``AZUREML_DEV_URL_MFE``, ``CLOUDTRAIN_VERTEX_API_ENDPOINT`` and
``STORAGE_EMULATOR_HOST``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from cloudtrain.cli.init import OUTPUTS, REQUIRED, TEMPLATES

DEADLINE_SECONDS = 5.0
CLOUDS = tuple(OUTPUTS)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str | None = None

    def line(self) -> str:
        label = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}[self.status]
        return f"{label} {self.name}: {self.detail}" + (f" -- fix: {self.fix}" if self.fix else "")


class Deadline(Exception):
    pass


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result, or :class:`Deadline` when it has not returned after ``seconds`` (SDK credential
    chains and connection pools can wait far longer than their own timeouts say)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Deadline(f"no answer within {seconds:g} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}"


# -- offline ----------------------------------------------------------------------------------------

def config_checks() -> tuple[list[Check], bool]:
    from cloudtrain.errors import SpecError
    from cloudtrain.specfile import _read_config, find_project_config, user_config_path

    checks, valid = [], True
    user = user_config_path()
    for label, path in (("user config", user), ("project config", find_project_config(Path.cwd()))):
        if path is None:
            continue
        if not path.is_file():
            checks.append(Check(label, "warn", f"{path} does not exist",
                                "cloudtrain init --cloud C --from-stack-outputs FILE (or set CLOUDTRAIN_<CLOUD>_<KEY> variables)"))
            continue
        try:
            sections = _read_config(path)
        except SpecError as error:
            valid = False
            checks.append(Check(label, "fail", error.message, error.hint))
            continue
        checks.append(Check(label, "ok", f"{path} is valid ({', '.join(sections) or 'no sections'})"))
    return checks, valid


def layered_settings() -> dict[str, dict[str, Any]]:
    from cloudtrain.specfile import config_layers

    files, variables = config_layers(Path.cwd())
    return {cloud: {**files.get(cloud, {}), **variables.get(cloud, {})} for cloud in CLOUDS}


def settings_check(cloud: str, settings: dict[str, Any]) -> Check:
    from pydantic import ValidationError

    from cloudtrain.providers import registry

    fix = f"deploy {TEMPLATES[cloud]}, then cloudtrain init --cloud {cloud} --from-stack-outputs outputs.json"
    try:
        registry.provider_class(cloud).settings_model.model_validate(settings)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return Check(f"{cloud} settings", "fail", problems, f"correct the {cloud} section of the config")
    except Exception as error:  # the backend's SDK is not installed
        return Check(f"{cloud} settings", "fail", short(error), f"pip install 'cloudtrain[{_extra(cloud)}]'")
    missing = [key for key in REQUIRED[cloud] if not settings.get(key)]
    if missing:
        return Check(f"{cloud} settings", "fail", f"{', '.join(f'{cloud}.{k}' for k in missing)} not set", fix)
    shown = ", ".join(f"{key}={value}" for key, value in settings.items())
    return Check(f"{cloud} settings", "ok", shown)


def _extra(cloud: str) -> str:
    return {"sagemaker": "aws", "azureml": "azure", "vertex": "gcp"}[cloud]


def unreachable(host: str, port: int, seconds: float = 3.0) -> str | None:
    """None when a TCP connection to host:port opens within ``seconds``, else why not."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=seconds):
            return None
    except OSError as error:
        return f"{host}:{port} unreachable within {seconds:g} s ({error})"


# -- online: one generator per cloud ----------------------------------------------------------------

def sagemaker_checks(settings: dict[str, Any]) -> Iterator[Check]:
    import boto3
    from botocore.config import Config

    from cloudtrain.providers.sagemaker import CREDENTIALS_HINT

    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        yield Check("sagemaker credentials", "fail", "no AWS credentials were found", CREDENTIALS_HINT)
        return
    yield Check("sagemaker credentials", "ok", f"found ({credentials.method})")
    region = settings.get("region") or session.region_name
    if not region:
        yield Check("sagemaker region", "fail", "no region", "set sagemaker.region (the stack's Region output) or AWS_DEFAULT_REGION")
        return
    config = Config(connect_timeout=3, read_timeout=DEADLINE_SECONDS, retries={"max_attempts": 1, "mode": "standard"})

    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, region_name=region, config=config)
        return clients[service]

    try:
        identity = within(DEADLINE_SECONDS + 3, lambda: client("sts").get_caller_identity())
    except Exception as error:
        yield Check("sagemaker endpoint", "fail", f"AWS did not answer in {region}: {short(error)}",
                    "check the network, the region and AWS_ENDPOINT_URL (emulator); refresh expired credentials")
        return
    account = identity["Account"]
    yield Check("sagemaker endpoint", "ok", f"AWS answers in {region} (account {account}, {identity['Arn']})")

    bucket = settings.get("bucket")
    try:
        within(DEADLINE_SECONDS + 3, lambda: client("s3").head_bucket(Bucket=bucket))
        location = within(DEADLINE_SECONDS + 3, lambda: client("s3").get_bucket_location(Bucket=bucket)).get("LocationConstraint") or "us-east-1"
        if location != region:
            yield Check("sagemaker bucket", "warn", f"{bucket} is in {location}, jobs run in {region}",
                        "SageMaker reads and writes a bucket in the job's region: deploy the stack in that region")
        else:
            yield Check("sagemaker bucket", "ok", f"{bucket} exists ({location})")
    except Exception as error:
        yield Check("sagemaker bucket", "fail", f"{bucket}: {short(error)}",
                    "check sagemaker.bucket (the stack's BucketName output) and that these credentials may use it")

    role_arn = str(settings.get("role_arn"))
    try:
        role = within(DEADLINE_SECONDS + 3, lambda: client("iam").get_role(RoleName=role_arn.rsplit("/", 1)[-1]))["Role"]
        trust = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(trust, str):
            import json
            import urllib.parse

            trust = json.loads(urllib.parse.unquote(trust))
        if "sagemaker.amazonaws.com" not in str(trust):
            yield Check("sagemaker role", "fail", f"{role_arn} does not trust sagemaker.amazonaws.com",
                        "use the stack's RoleArn output, whose trust policy names SageMaker")
        elif role.get("Arn") != role_arn:
            yield Check("sagemaker role", "warn", f"found {role.get('Arn')}, config says {role_arn}", "use the stack's RoleArn output")
        else:
            yield Check("sagemaker role", "ok", f"{role_arn} exists and trusts SageMaker")
    except Exception as error:
        yield Check("sagemaker role", "fail", f"{role_arn}: {short(error)}",
                    "check sagemaker.role_arn (the stack's RoleArn output); reading it needs iam:GetRole")

    yield sagemaker_quota_check(client("service-quotas"))


def sagemaker_quota_check(quotas: Any) -> Check:
    def gpu_quotas() -> dict[str, float]:
        found: dict[str, float] = {}
        token = None
        for _ in range(20):  # a few hundred SageMaker quotas, 100 a page
            page = quotas.list_service_quotas(ServiceCode="sagemaker", MaxResults=100, **({"NextToken": token} if token else {}))
            for quota in page.get("Quotas", []):
                name = quota.get("QuotaName", "")
                if name.endswith("for training job usage") and name.startswith(("ml.p", "ml.g", "ml.trn")):
                    found[name.split()[0]] = quota.get("Value", 0)
            token = page.get("NextToken")
            if not token:
                break
        return found

    try:
        found = within(DEADLINE_SECONDS * 2, gpu_quotas)
    except Exception as error:
        return Check("sagemaker quotas", "skip", f"Service Quotas did not tell ({short(error)})",
                     "see Service Quotas > Amazon SageMaker > '<instance> for training job usage' (needs servicequotas:ListServiceQuotas)")
    usable = {name: value for name, value in found.items() if value > 0}
    if not usable:
        return Check("sagemaker quotas", "warn", f"no GPU instance type has training quota ({len(found)} listed)",
                     "request an increase: Service Quotas > Amazon SageMaker > 'ml.g5.xlarge for training job usage'")
    listed = ", ".join(f"{name}={value:g}" for name, value in sorted(usable.items())[:8])
    return Check("sagemaker quotas", "ok", f"GPU training quota: {listed}{' ...' if len(usable) > 8 else ''}")


def azureml_checks(settings: dict[str, Any]) -> Iterator[Check]:
    from urllib.parse import urlparse

    endpoint = os.environ.get("AZUREML_DEV_URL_MFE")
    host = urlparse(endpoint).hostname if endpoint else "management.azure.com"
    port = (urlparse(endpoint).port or 443) if endpoint else 443
    problem = unreachable(host or "management.azure.com", port)
    if problem:
        yield Check("azureml endpoint", "fail", problem, "check the network, proxy (HTTPS_PROXY) and AZUREML_DEV_URL_MFE (emulator)")
        return
    yield Check("azureml endpoint", "ok", f"{host}:{port} reachable")
    from azure.identity import DefaultAzureCredential

    from cloudtrain.providers.azureml_errors import CREDENTIALS_HINT

    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    try:
        within(DEADLINE_SECONDS * 2, lambda: credential.get_token("https://management.azure.com/.default"))
        yield Check("azureml credentials", "ok", "DefaultAzureCredential got a token")
    except Exception as error:
        yield Check("azureml credentials", "fail", short(error), CREDENTIALS_HINT)
        return
    from azure.ai.ml import MLClient

    ml = MLClient(credential, settings["subscription_id"], settings["resource_group"], settings["workspace"], show_progress=False)
    try:
        workspace = within(DEADLINE_SECONDS * 2, lambda: ml.workspaces.get(settings["workspace"]))
        yield Check("azureml workspace", "ok", f"{settings['workspace']} exists ({workspace.location})")
    except Exception as error:
        yield Check("azureml workspace", "fail", f"{settings['workspace']}: {short(error)}",
                    "check azureml.subscription_id, resource_group and workspace (the deployment's outputs) and your role on it")
        return
    compute = settings.get("compute")
    if not compute:
        yield Check("azureml compute", "skip", "azureml.compute not set: jobs use serverless compute", None)
    else:
        try:
            cluster = within(DEADLINE_SECONDS * 2, lambda: ml.compute.get(compute))
            low = getattr(cluster, "min_instances", 0) or 0
            detail = (f"{compute}: {getattr(cluster, 'size', '?')}, {low}..{getattr(cluster, 'max_instances', '?')} nodes, "
                      f"{getattr(cluster, 'tier', '?')}")
            yield (Check("azureml compute", "warn", detail + " (does not scale to zero)", "set its minimum nodes to 0") if low
                   else Check("azureml compute", "ok", detail))
        except Exception as error:
            yield Check("azureml compute", "fail", f"{compute}: {short(error)}", "check azureml.compute (the deployment's compute output)")
    try:
        usages = within(DEADLINE_SECONDS * 2, lambda: list(ml.compute.list_usage(location=workspace.location)))
        totals = [u for u in usages if "total" in str(getattr(u, "name", "") or "").lower() and (getattr(u, "limit", 0) or 0) > 0]
        shown = "; ".join(f"{u.name}: {u.current_value}/{u.limit}" for u in totals[:4]) or f"{len(usages)} usages, no regional total"
        yield Check("azureml quotas", "ok" if totals else "warn", shown,
                    None if totals else "request GPU quota: Azure ML studio > Quota, for the cluster's VM family")
    except Exception as error:
        yield Check("azureml quotas", "skip", f"compute usages did not tell ({short(error)})", None)


def vertex_checks(settings: dict[str, Any]) -> Iterator[Check]:
    from cloudtrain.providers.vertex import ENDPOINT_VARIABLE, VertexProvider
    from cloudtrain.providers.vertex_job import split_gcs

    provider = VertexProvider()
    emulated = os.environ.get(ENDPOINT_VARIABLE)
    try:
        credentials = provider.credentials()
        yield Check("vertex credentials", "ok", "emulator (anonymous)" if emulated else f"found ({type(credentials).__name__})")
    except Exception as error:
        yield Check("vertex credentials", "fail", short(error), getattr(error, "hint", None) or "gcloud auth application-default login")
        return
    location = settings.get("location") or "us-central1"
    host, port = (emulated.split("://")[-1].split("/")[0], 80) if emulated else (f"{location}-aiplatform.googleapis.com", 443)
    if ":" in host:
        host, port = host.rsplit(":", 1)[0], int(host.rsplit(":", 1)[1])
    problem = unreachable(host, port)
    if problem:
        yield Check("vertex endpoint", "fail", problem, f"check the network and vertex.location ({location})")
        return
    yield Check("vertex endpoint", "ok", f"{host}:{port} reachable")
    bucket_name = split_gcs(str(settings["staging_bucket"]))[0]
    try:
        bucket = within(DEADLINE_SECONDS * 2, lambda: provider.storage(settings["project"]).get_bucket(bucket_name, timeout=DEADLINE_SECONDS))
        where = str(getattr(bucket, "location", "") or "").lower()
        if where and where != location.lower() and not emulated:
            yield Check("vertex bucket", "warn", f"gs://{bucket_name} is in {where}, jobs run in {location}",
                        "a bucket in the job's region avoids cross-region traffic: apply infra/gcp with -var region=...")
        else:
            yield Check("vertex bucket", "ok", f"gs://{bucket_name} exists{f' ({where})' if where else ''}")
    except Exception as error:
        yield Check("vertex bucket", "fail", f"gs://{bucket_name}: {short(error)}",
                    "check vertex.staging_bucket (the staging_bucket output) and roles/storage.objectUser on it")
    account = settings.get("service_account")
    if not account:
        yield Check("vertex service account", "warn", "vertex.service_account not set: jobs run as the default compute service account",
                    "set it to the service_account output of infra/gcp (least privilege)")
    elif emulated:
        yield Check("vertex service account", "skip", "not checked against an emulator", None)
    else:
        yield vertex_service_account_check(credentials, str(account))
    yield Check("vertex quotas", "skip", "Vertex AI quotas are in the Cloud Quotas API, which doctor does not call",
                "see IAM & Admin > Quotas, service aiplatform.googleapis.com ('Custom model training ... per region')")


def vertex_service_account_check(credentials: Any, account: str) -> Check:
    from google.auth.transport.requests import AuthorizedSession

    url = f"https://iam.googleapis.com/v1/projects/-/serviceAccounts/{account}"
    try:
        response = within(DEADLINE_SECONDS * 2, lambda: AuthorizedSession(credentials).get(url, timeout=DEADLINE_SECONDS))
    except Exception as error:
        return Check("vertex service account", "skip", f"IAM did not answer ({short(error)})", None)
    if response.status_code == 200:
        return Check("vertex service account", "ok", f"{account} exists")
    if response.status_code == 404:
        return Check("vertex service account", "fail", f"{account} does not exist", "use the service_account output of infra/gcp")
    return Check("vertex service account", "skip", f"IAM answered HTTP {response.status_code} (reading it needs iam.serviceAccounts.get)", None)


ONLINE: dict[str, Callable[[dict[str, Any]], Iterator[Check]]] = {
    "sagemaker": sagemaker_checks, "azureml": azureml_checks, "vertex": vertex_checks,
}


def run_checks(clouds: list[str] | None, offline: bool) -> Iterator[Check]:
    checks, config_valid = config_checks()
    yield from checks
    if not config_valid:
        return
    settings = layered_settings()
    chosen = clouds or [cloud for cloud in CLOUDS if settings.get(cloud)] or list(CLOUDS)
    for cloud in chosen:
        check = settings_check(cloud, settings[cloud])
        yield check
        if check.status == "fail":
            continue
        if offline:
            yield Check(f"{cloud} online", "skip", "--offline", None)
            continue
        try:
            yield from ONLINE[cloud](settings[cloud])
        except ImportError as error:
            yield Check(f"{cloud} online", "fail", f"the SDK is not installed ({error.name})", f"pip install 'cloudtrain[{_extra(cloud)}]'")


@click.command("doctor")
@click.option("--cloud", "clouds", multiple=True, type=click.Choice(CLOUDS), help="Check this cloud (repeatable; default: those configured).")
@click.option("--offline", is_flag=True, help="Check the configuration only; no network.")
def command(clouds: tuple[str, ...], offline: bool) -> None:
    """Check config, credentials, endpoints, bucket, role and quotas; one line per check, with the fix."""
    counts = {"ok": 0, "warn": 0, "fail": 0, "skip": 0}
    for check in run_checks(list(clouds) or None, offline):
        counts[check.status] += 1
        click.echo(check.line())
    click.echo(", ".join(f"{n} {status}" for status, n in counts.items() if n))
    if counts["fail"]:
        raise SystemExit(3)
