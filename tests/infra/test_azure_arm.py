"""infra/azure: the ARM template uses managed identities, not keys, and allows no public blob access;
the GPU cluster scales to zero and can be low-priority; its outputs are what `cloudtrain init` reads."""

from __future__ import annotations

import json
from typing import Any

from infra_files import ARM_TEMPLATE


def template() -> dict[str, Any]:
    return json.loads(ARM_TEMPLATE.read_text())


def resource(kind: str) -> dict[str, Any]:
    (found,) = [r for r in template()["resources"] if r["type"] == kind]
    return found


def test_managed_identities_not_keys() -> None:
    assert resource("Microsoft.MachineLearningServices/workspaces")["identity"] == {"type": "SystemAssigned"}
    assert resource("Microsoft.MachineLearningServices/workspaces")["properties"]["systemDatastoresAuthMode"] == "identity"
    compute = resource("Microsoft.MachineLearningServices/workspaces/computes")
    assert compute["identity"] == {"type": "SystemAssigned"} and compute["properties"]["disableLocalAuth"] is True
    storage = resource("Microsoft.Storage/storageAccounts")["properties"]
    assert storage["allowSharedKeyAccess"] is False and storage["defaultToOAuthAuthentication"] is True
    registry = resource("Microsoft.ContainerRegistry/registries")["properties"]
    assert registry["adminUserEnabled"] is False and registry["anonymousPullEnabled"] is False
    assert resource("Microsoft.KeyVault/vaults")["properties"]["enableRbacAuthorization"] is True
    text = ARM_TEMPLATE.read_text()
    assert "listKeys" not in text and "listCredentials" not in text and "connectionString" not in text
    granted = {json.dumps(r["properties"]["roleDefinitionId"]) for r in template()["resources"]
               if r["type"] == "Microsoft.Authorization/roleAssignments"}
    assert len(granted) == 4  # blob data, AcrPull, key vault secrets user, AzureML data scientist: no Owner/Contributor
    assert "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" not in text and "b24988ac-6180-42a0-ab88-20f7382dd24c" not in text


def test_no_public_blob_access_and_tls_only() -> None:
    storage = resource("Microsoft.Storage/storageAccounts")["properties"]
    assert storage["allowBlobPublicAccess"] is False
    assert storage["supportsHttpsTrafficOnly"] is True and storage["minimumTlsVersion"] == "TLS1_2"
    assert storage["networkAcls"]["defaultAction"] == "Deny"
    assert resource("Microsoft.KeyVault/vaults")["properties"]["networkAcls"]["defaultAction"] == "Deny"
    assert resource("Microsoft.ContainerRegistry/registries")["properties"]["networkRuleSet"]["defaultAction"] == "Deny"
    vault = resource("Microsoft.KeyVault/vaults")["properties"]
    assert vault["enablePurgeProtection"] is True and vault["enableSoftDelete"] is True


def test_gpu_cluster_scales_to_zero_with_a_low_priority_option() -> None:
    cluster = resource("Microsoft.MachineLearningServices/workspaces/computes")["properties"]["properties"]
    assert cluster["scaleSettings"]["minNodeCount"] == 0
    assert cluster["vmPriority"] == "[parameters('vmPriority')]"
    priority = template()["parameters"]["vmPriority"]
    assert set(priority["allowedValues"]) == {"Dedicated", "LowPriority"}
    assert template()["parameters"]["vmSize"]["defaultValue"].startswith("Standard_NC")  # a GPU size
    assert cluster["enableNodePublicIp"] is False and cluster["remoteLoginPortPublicAccess"] == "Disabled"


def test_outputs_are_what_cloudtrain_init_reads() -> None:
    from cloudtrain.cli.init import OUTPUTS

    assert set(OUTPUTS["azureml"]) <= set(template()["outputs"])


def test_every_skip_in_the_template_has_a_reason() -> None:
    for item in template()["resources"]:
        for skip in item.get("metadata", {}).get("checkov", []):
            rule, _, reason = skip.removeprefix("checkov:skip=").partition(":")
            assert rule.startswith("CKV") and len(reason.strip()) > 20, skip
