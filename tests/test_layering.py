"""The architecture's import rules: layers point one way, and the CLI starts without heavy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cloudtrain"
HEAVY = ("boto3", "botocore", "sagemaker", "azure", "google.cloud", "torch", "sklearn", "pandas", "moto", "optuna")

# module (or package prefix) -> cloudtrain modules it must not import at any depth of its code
FORBIDDEN = {
    "cloudtrain.spec": ("cloudtrain.",),
    "cloudtrain.errors": ("cloudtrain.",),
    "cloudtrain.catalog": ("cloudtrain.providers", "cloudtrain.plan", "cloudtrain.cost", "cloudtrain.cli", "cloudtrain.runner", "cloudtrain.store"),
    "cloudtrain.plan": ("cloudtrain.providers", "cloudtrain.cli", "cloudtrain.runner", "cloudtrain.store"),
    "cloudtrain.cost": ("cloudtrain.providers", "cloudtrain.cli", "cloudtrain.runner", "cloudtrain.store"),
    "cloudtrain.providers": ("cloudtrain.cli", "cloudtrain.runner", "cloudtrain.store"),
    "cloudtrain.runtime": ("cloudtrain.spec", "cloudtrain.plan", "cloudtrain.providers", "cloudtrain.cli", "cloudtrain.catalog"),
}
ALLOWED_SELF = {"cloudtrain.spec": ("cloudtrain.spec",), "cloudtrain.errors": ()}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_point_one_way(layer: str) -> None:
    files = [p for p in PACKAGE.rglob("*.py") if module_name(p) == layer or module_name(p).startswith(layer + ".")]
    assert files, layer
    for path in files:
        for name in imports_of(path):
            if name in ALLOWED_SELF.get(layer, ()) or name.startswith(layer):
                continue
            for forbidden in FORBIDDEN[layer]:
                allowed = layer in ("cloudtrain.spec",) and name == "cloudtrain.errors"
                assert allowed or not name.startswith(forbidden), f"{module_name(path)} imports {name}"


def _modules(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('MODULES:', ' '.join(sorted(m for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.rsplit("MODULES:", 1)[1].split())


def loaded_after(code: str) -> list[str]:
    """Heavy modules that ``code`` loads beyond what a bare interpreter has (namespace-package
    .pth files pre-create an empty ``google.cloud``)."""
    baseline = _modules("pass")
    return sorted(m for m in _modules(code) - baseline if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_import_cloudtrain_loads_no_heavy_library() -> None:
    assert loaded_after("import cloudtrain") == []


def test_cli_help_loads_no_heavy_library() -> None:
    assert loaded_after("from cloudtrain.cli.main import cli\ntry:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass") == []


def test_estimate_loads_no_cloud_sdk(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[1] / "examples" / "digits-sklearn.yaml"
    code = f"from cloudtrain.cli.main import cli\ntry:\n    cli.main(['estimate', {str(spec)!r}], standalone_mode=False)\nexcept SystemExit: pass"
    assert loaded_after(code) == []


def test_no_provider_registers_itself_on_import() -> None:
    from cloudtrain.providers import registry

    assert set(registry.BUILTIN) == {"local", "sagemaker", "azureml", "vertex"}
