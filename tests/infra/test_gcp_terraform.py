"""infra/gcp, parsed with python-hcl2: the training service account holds only the roles a Vertex AI
custom training job uses, each on the narrowest resource; the staging bucket is uniform-access,
public-access-prevented, versioned, CMEK-encrypted and expires old bundles; the APIs are enabled."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from infra_files import TERRAFORM

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 comes with the lint-infra extra (make test installs it)")


@functools.lru_cache(maxsize=None)
def parsed(name: str) -> dict[str, Any]:
    with open(TERRAFORM / name) as stream:
        return hcl2.load(stream)


def unquote(value: Any) -> Any:
    """python-hcl2 8 keeps string literals quoted; earlier versions do not."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(kind: str) -> dict[str, dict[str, Any]]:
    """``resource "kind" "name" {...}`` blocks of main.tf: name -> attributes (string values unquoted)."""
    found: dict[str, dict[str, Any]] = {}
    for block in parsed("main.tf").get("resource", []):
        for key, named in block.items():
            if unquote(key) == kind:
                for name, attributes in named.items():
                    found[unquote(name)] = attributes
    return found


def one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def test_training_service_account_has_only_the_roles_vertex_training_needs() -> None:
    training = "serviceAccount:${google_service_account.training.email}"
    grants: set[tuple[str, str]] = set()
    for kind in ("google_project_iam_member", "google_storage_bucket_iam_member", "google_artifact_registry_repository_iam_member",
                 "google_secret_manager_secret_iam_member", "google_service_account_iam_member", "google_project_iam_binding",
                 "google_project_iam_policy", "google_storage_bucket_iam_binding"):
        for attributes in blocks(kind).values():
            members = [unquote(m) for m in (attributes.get("members") or [attributes.get("member")])]
            if training in members:
                grants.add((kind, unquote(attributes["role"])))
    assert grants == {
        ("google_project_iam_member", "roles/logging.logWriter"),
        ("google_storage_bucket_iam_member", "roles/storage.objectUser"),
        ("google_artifact_registry_repository_iam_member", "roles/artifactregistry.reader"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor"),
    }
    text = (TERRAFORM / "main.tf").read_text()
    for broad in ("roles/owner", "roles/editor", "roles/aiplatform.admin", "roles/storage.admin", "roles/iam.serviceAccountTokenCreator"):
        assert broad not in text
    bucket_grant = blocks("google_storage_bucket_iam_member")["training_uses_staging"]
    assert unquote(bucket_grant["bucket"]) == "${google_storage_bucket.staging.name}"  # its own bucket, not project-wide


def test_staging_bucket_settings() -> None:
    bucket = blocks("google_storage_bucket")["staging"]
    assert bucket["uniform_bucket_level_access"] is True
    assert unquote(bucket["public_access_prevention"]) == "enforced"
    assert one(bucket["versioning"])["enabled"] is True
    assert unquote(one(bucket["encryption"])["default_kms_key_name"]) == "${google_kms_crypto_key.staging.id}"
    assert unquote(one(bucket["logging"])["log_bucket"]) == "${google_storage_bucket.access_logs.name}"
    conditions = [one(rule["condition"]) for rule in bucket["lifecycle_rule"]]
    bundles = next(c for c in conditions if "matches_suffix" in c)
    assert [unquote(s) for s in bundles["matches_suffix"]] == ["/staging/code.tar.gz"]  # cloudtrain's Vertex bundle
    assert any("days_since_noncurrent_time" in c for c in conditions)
    assert bucket.get("force_destroy") is False
    logs = blocks("google_storage_bucket")["access_logs"]
    assert logs["uniform_bucket_level_access"] is True and unquote(logs["public_access_prevention"]) == "enforced"


def test_apis_and_outputs() -> None:
    text = (TERRAFORM / "main.tf").read_text()
    for api in ("aiplatform.googleapis.com", "storage.googleapis.com", "logging.googleapis.com", "artifactregistry.googleapis.com",
                "iam.googleapis.com", "secretmanager.googleapis.com"):
        assert f'"{api}"' in text
    from cloudtrain.cli.init import OUTPUTS

    outputs = {unquote(name) for block in parsed("outputs.tf")["output"] for name in block}
    assert set(OUTPUTS["vertex"]) <= outputs
    assert blocks("google_project_service")["apis"]["disable_on_destroy"] is False


def test_terraform_fmt_where_terraform_is_installed() -> None:
    """`terraform fmt -check` needs no provider download (`terraform validate` does: not run offline)."""
    import shutil
    import subprocess

    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed; the files are still parsed and checked above")
    result = subprocess.run(["terraform", "fmt", "-check", "-diff", "-no-color", str(TERRAFORM)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
