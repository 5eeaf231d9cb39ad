"""checkov passes on all of infra/ (CloudFormation, ARM, Terraform, Dockerfile, secrets), and every
skipped rule carries its reason where it is skipped.

checkov pins boto3, networkx and packaging below the project's own pins, so `make test` installs it
in a venv of its own (.venv-infra); CHECKOV names another executable. It runs offline
(``skip-download`` in infra/.checkov.yaml)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra_files import INFRA, REPO

FRAMEWORKS = {"cloudformation", "arm", "terraform", "dockerfile"}


def checkov() -> str:
    for candidate in (os.environ.get("CHECKOV"), str(REPO / ".venv-infra" / "bin" / "checkov"), shutil.which("checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("checkov is not installed: `make test` installs it in .venv-infra (it needs a package registry); "
                "or set CHECKOV to its path")


@pytest.fixture(scope="module")
def reports() -> list[dict]:
    result = subprocess.run([checkov(), "--config-file", str(INFRA / ".checkov.yaml"), "--directory", str(INFRA), "--output", "json"],
                            capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    data = json.loads(result.stdout)
    found = data if isinstance(data, list) else [data]
    assert result.returncode == 0, "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}" for r in found for c in r.get("results", {}).get("failed_checks", []))
    return found


def test_checkov_passes_on_every_framework(reports: list[dict]) -> None:
    scanned = {r["check_type"] for r in reports}
    assert FRAMEWORKS <= scanned, f"checkov scanned only {scanned}"
    for report in reports:
        summary = report["summary"]
        assert summary["failed"] == 0 and summary["parsing_errors"] == 0, (report["check_type"], summary)
        assert summary["passed"] > 0 or report["check_type"] == "secrets", (report["check_type"], summary)


def test_every_skipped_rule_says_why(reports: list[dict]) -> None:
    skipped = [c for r in reports for c in r["results"].get("skipped_checks", [])]
    assert skipped, "the templates skip a few rules, each with its reason"
    for check in skipped:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 20, f"{check['check_id']} in {check['file_path']} is skipped without a reason"
