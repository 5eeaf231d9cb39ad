"""The instance tables (cloudtrain/catalog/data/machines_<cloud>.csv) built by scripts/build_machines.py."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from cloudtrain.catalog.accelerators import KNOWN_ACCELERATORS

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "cloudtrain" / "catalog" / "data"
HEADER = ["cloud", "instance_type", "vcpus", "memory_gib", "accelerator", "accelerator_count",
          "accelerator_memory_gib", "regions", "source"]
CLOUDS = ("sagemaker", "azureml", "vertex")


def _table(cloud: str) -> dict[str, dict[str, str]]:
    with (DATA / f"machines_{cloud}.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == HEADER
        rows = list(reader)
    assert rows
    table = {row["instance_type"]: row for row in rows}
    assert len(table) == len(rows), "one row per instance type"
    return table


@pytest.mark.parametrize("cloud", CLOUDS)
def test_table_parses_with_sane_facts(cloud):
    for name, row in _table(cloud).items():
        assert row["cloud"] == cloud
        assert int(row["vcpus"]) > 0 and float(row["memory_gib"]) > 0, name
        assert row["source"].strip(), name
        if row["accelerator"]:
            assert row["accelerator"] in KNOWN_ACCELERATORS, name
            assert int(row["accelerator_count"]) > 0, name
            if row["accelerator_memory_gib"]:
                assert float(row["accelerator_memory_gib"]) > 0, name
        else:
            assert row["accelerator_count"] == "0" and row["accelerator_memory_gib"] == "", name
        assert row["regions"] == " ".join(sorted(set(row["regions"].split()))), name


def _facts(cloud, name):
    row = _table(cloud)[name]
    return (int(row["vcpus"]), float(row["memory_gib"]), row["accelerator"] or None,
            int(row["accelerator_count"]), float(row["accelerator_memory_gib"] or 0), row["regions"].split())


def test_sagemaker_known_types():
    vcpus, mem, acc, count, per, _ = _facts("sagemaker", "ml.p4d.24xlarge")
    assert (vcpus, mem, acc, count, per) == (96, 1152, "A100", 8, 40)
    assert "us-west-2" in _facts("sagemaker", "ml.p5.48xlarge")[5]
    assert _facts("sagemaker", "ml.p5.48xlarge")[2:4] == ("H100", 8)
    assert _facts("sagemaker", "ml.trn1.32xlarge")[:4] == (128, 512, "Trainium", 16)
    assert _facts("sagemaker", "ml.g5.12xlarge")[2:5] == ("A10G", 4, 24)
    assert _facts("sagemaker", "ml.c4.xlarge")[:4] == (4, 7.5, None, 0)


def test_sagemaker_rows_are_training_instance_types():
    botocore_session = pytest.importorskip("botocore.session")
    enum = set(botocore_session.get_session().get_service_model("sagemaker").shape_for("TrainingInstanceType").enum)
    table = _table("sagemaker")
    assert set(table) <= enum
    assert len(table) >= len(enum) - 10  # the few without size facts are listed in build_machines.py


def test_vertex_known_types():
    assert _facts("vertex", "a2-highgpu-8g")[:5] == (96, 680, "A100", 8, 40)
    ultra = _facts("vertex", "a2-ultragpu-8g")
    assert ultra[2:4] == ("A100-80GB", 8) and "europe-west4" in ultra[5]
    assert _facts("vertex", "n1-standard-8+NVIDIA_TESLA_T4x1")[:4] == (8, 30, "T4", 1)
    assert _facts("vertex", "g2-standard-24")[:4] == (24, 96, "L4", 2)
    assert _facts("vertex", "a3-megagpu-8g")[2] == "H100-MEGA"
    assert _facts("vertex", "a3-highgpu-8g")[2] == "H100"


def test_vertex_attached_accelerators_are_aiplatform_enums():
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    names = {a.name for a in aiplatform_v1.AcceleratorType}
    for name in _table("vertex"):
        if "+" in name:
            machine, rest = name.split("+", 1)
            enum, count = rest.rsplit("x", 1)
            assert machine and enum in names and int(count) > 0, name


def test_azureml_known_types():
    assert _facts("azureml", "Standard_ND96amsr_A100_v4")[2:5] == ("A100-80GB", 8, 80)
    assert _facts("azureml", "Standard_ND96amsr_A100_v4")[:2] == (96, 1800)


def test_build_machines_check_passes():
    pytest.importorskip("moto")
    pytest.importorskip("sagemaker")
    pytest.importorskip("google.cloud.aiplatform_v1")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_machines.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
