"""What `emulator start` exports must not break other programs in the user's shell."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trustme")


def test_the_azure_ca_bundle_still_trusts_the_system_roots(tmp_path: Path) -> None:
    import certifi

    from cloudtrain.emulators.azureml import AzureMLEmulator

    with AzureMLEmulator(root=tmp_path, server=True) as emulator:
        bundle = Path(emulator.environment()["REQUESTS_CA_BUNDLE"]).read_text()
    roots = Path(certifi.where()).read_text().count("BEGIN CERTIFICATE")
    assert bundle.count("BEGIN CERTIFICATE") == roots + 1  # every public root, and the emulator's CA
