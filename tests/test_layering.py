"""The architecture's import rules (ARCHITECTURE.md, "Layers"): layers point one way, there is no
import cycle, the runtime is stdlib-only, and the CLI starts without heavy imports.

The rules are checked on the import graph of the package's modules, computed from their syntax
trees: every ``import``/``from ... import`` at any depth (inside functions too), relative imports
resolved, ``from package import name`` counted as an import of ``package.name`` when that is a
module. Imports under ``if TYPE_CHECKING:`` never run: they count for the layer rules but not for
cycles. :func:`test_the_checker_reports_each_kind_of_violation` runs the checker on a small fake
package breaking every rule, so these tests are proven able to fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cloudtrain"
HEAVY = ("boto3", "botocore", "sagemaker", "azure", "google.cloud", "torch", "sklearn", "pandas", "moto", "optuna",
         "pytest", "_pytest")
UPPER = ("providers", "cli", "runner", "store", "api", "testing")  # what pure layers never import

#: layer -> cloudtrain modules (or packages) it must not import; "*" : nothing of ours but the allowed
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "cloudtrain.spec": ("*",),
    "cloudtrain.errors": ("*",),
    "cloudtrain.entry_points": ("*",),
    "cloudtrain.catalog": ("plan", "cost", *UPPER),
    "cloudtrain.plan": UPPER,
    "cloudtrain.cost": ("plan", *UPPER),
    "cloudtrain.providers": ("cli", "runner", "store", "api", "emulators", "testing"),
    "cloudtrain.runtime": ("*",),
}
#: layer -> the cloudtrain modules it may import despite "*" (besides its own modules)
ALLOWED: dict[str, tuple[str, ...]] = {"cloudtrain.spec": ("cloudtrain.errors", "cloudtrain.entry_points")}
STDLIB_ONLY = ("cloudtrain.runtime",)
#: The exceptions, imported inside a function (never at module import): the entry shim resolves a
#: cloud secret with that cloud's SDK, which the cloud's training containers hold; the runtime
#: context logs a metric to MLflow on Azure ML, where its environments carry it.
RUNTIME_CLOUD_SDKS = {"cloudtrain.runtime.entry": ("boto3", "google", "azure"), "cloudtrain.runtime.context": ("mlflow",)}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module (ours, resolved) or a top-level third-party / stdlib name
    line: int
    typing_only: bool  # under `if TYPE_CHECKING:`
    in_function: bool  # runs only when the function is called


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, typing_only: bool = False, in_function: bool = False):  # type: ignore[no-untyped-def]
    """(node, typing_only, in_function) for every import node at any depth."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, typing_only, in_function
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True, inside)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), typing_only, inside)
        else:
            yield from _imports(node, typing_only, inside)


def import_graph(root: Path) -> tuple[set[str], list[Edge]]:
    """The modules of the package at ``root`` and every import edge out of them."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules, edges = set(paths), []
    top = root.name
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        for node, typing_only, in_function in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules]
                # `from pkg import sub`: the submodule; `from pkg import name`: the package itself
                targets = submodules + ([module] if len(submodules) < len(node.names) else [])
            for target in targets:
                if target == "__future__":
                    continue
                ours = target == top or target.startswith(top + ".")
                if ours and target not in modules:  # `import cloudtrain.x.Name`-like: its module
                    while target not in modules and "." in target:
                        target = target.rsplit(".", 1)[0]
                edges.append(Edge(name, target if ours else target.split(".")[0], node.lineno, typing_only, in_function))
    return modules, edges


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def find_cycles(modules: set[str], edges: list[Edge]) -> list[list[str]]:
    """Each strongly connected group of modules (more than one, or one importing itself), sorted."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for edge in edges:
        if edge.target in modules and not edge.typing_only:
            graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for module in sorted(modules):
        if module not in index:
            visit(module)
    return sorted(groups)


def check_layering(root: Path) -> list[str]:
    """Every violation of the layer rules in the package at ``root``, one message each."""
    top = root.name
    modules, edges = import_graph(root)
    problems = []
    for edge in edges:
        ours = _within(edge.target, top)
        for layer, forbidden in FORBIDDEN.items():
            layer = top + layer[len("cloudtrain"):]
            if not _within(edge.source, layer) or (ours and _within(edge.target, layer)):
                continue
            if ours and "*" in forbidden and edge.target not in [top + a[len("cloudtrain"):] for a in ALLOWED.get(layer, ())]:
                problems.append(f"{edge.source}:{edge.line} imports {edge.target}: {layer} imports nothing of {top} but itself")
            for name in forbidden:
                if ours and name != "*" and _within(edge.target, f"{top}.{name}"):
                    problems.append(f"{edge.source}:{edge.line} imports {edge.target}: {layer} must not import {top}.{name}")
        if any(_within(edge.source, top + layer[len("cloudtrain"):]) for layer in STDLIB_ONLY) and not ours \
                and edge.target not in sys.stdlib_module_names \
                and not (edge.in_function and edge.target in RUNTIME_CLOUD_SDKS.get(edge.source, ())):
            problems.append(f"{edge.source}:{edge.line} imports {edge.target}: the runtime is stdlib-only")
        if ours and _within(edge.target, f"{top}.testing") and not _within(edge.source, f"{top}.testing"):
            problems.append(f"{edge.source}:{edge.line} imports {edge.target}: only tests import {top}.testing")
    for group in find_cycles(modules, edges):
        problems.append(f"import cycle among {', '.join(group)}")
    return problems


def test_the_package_follows_the_layer_rules() -> None:
    assert check_layering(PACKAGE) == []


def test_the_import_graph_sees_function_level_and_relative_imports() -> None:
    modules, edges = import_graph(PACKAGE)
    assert {"cloudtrain.spec", "cloudtrain.plan", "cloudtrain.providers.base", "cloudtrain.runtime.context"} <= modules
    targets = {(e.source, e.target) for e in edges}
    # sections.py imports the registry inside its functions only
    assert ("cloudtrain.sections", "cloudtrain.providers.registry") in targets
    assert ("cloudtrain.runner", "cloudtrain.cost") in targets


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_checker_reports_each_kind_of_violation(tmp_path: Path) -> None:
    fake = write_tree(tmp_path / "cloudtrain", {
        "__init__.py": "",
        "errors.py": "",
        "spec.py": "from cloudtrain.errors import X\nfrom cloudtrain import plan\n",
        "catalog/__init__.py": "def load():\n    from cloudtrain.providers import registry\n",
        "plan.py": "import cloudtrain.cost\n",
        "cost.py": "def bound():\n    from . import plan\n",
        "providers/__init__.py": "",
        "providers/registry.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cloudtrain.runner import Runner\n",
        "providers/sagemaker.py": "from ..cli import main\n",
        "runner.py": "import cloudtrain.testing.backend\n",
        "cli/__init__.py": "",
        "cli/main.py": "",
        "testing/__init__.py": "",
        "testing/backend.py": "import pytest\nfrom cloudtrain import runner\n",
        "runtime/__init__.py": "import json\nimport numpy as np\nfrom cloudtrain.runtime import context\n",
        "runtime/context.py": "import os\nfrom cloudtrain.spec import JobSpec\n",
        "runtime/entry.py": "import boto3\ndef secret():\n    import azure.identity\n",
    })
    problems = check_layering(fake)
    expected = [
        "cloudtrain.spec:2 imports cloudtrain.plan: cloudtrain.spec imports nothing of cloudtrain but itself",
        "cloudtrain.catalog:2 imports cloudtrain.providers.registry: cloudtrain.catalog must not import cloudtrain.providers",
        "cloudtrain.cost:2 imports cloudtrain.plan: cloudtrain.cost must not import cloudtrain.plan",
        "cloudtrain.providers.registry:3 imports cloudtrain.runner: cloudtrain.providers must not import cloudtrain.runner",
        "cloudtrain.providers.sagemaker:1 imports cloudtrain.cli.main: cloudtrain.providers must not import cloudtrain.cli",
        "cloudtrain.runner:1 imports cloudtrain.testing.backend: only tests import cloudtrain.testing",
        "cloudtrain.runtime:2 imports numpy: the runtime is stdlib-only",
        "cloudtrain.runtime.context:2 imports cloudtrain.spec: cloudtrain.runtime imports nothing of cloudtrain but itself",
        "cloudtrain.runtime.entry:1 imports boto3: the runtime is stdlib-only",  # at module level: not the exception
        "import cycle among cloudtrain.cost, cloudtrain.plan",
        "import cycle among cloudtrain.runner, cloudtrain.testing.backend",
    ]
    for message in expected:
        assert message in problems, (message, problems)
    assert len(problems) == len(expected), problems  # spec -> errors, runtime -> json/itself are allowed


def _modules(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('MODULES:', ' '.join(sorted(m for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.rsplit("MODULES:", 1)[1].split())


def loaded_after(code: str, names: tuple[str, ...] = HEAVY) -> list[str]:
    """Modules among ``names`` that ``code`` loads beyond what a bare interpreter has
    (namespace-package .pth files pre-create an empty ``google.cloud``)."""
    baseline = _modules("pass")
    return sorted(m for m in _modules(code) - baseline if any(m == h or m.startswith(h + ".") for h in names))


def test_import_cloudtrain_loads_no_heavy_library() -> None:
    assert loaded_after("import cloudtrain") == []


def test_cli_help_loads_no_heavy_library() -> None:
    assert loaded_after("from cloudtrain.cli.main import cli\ntry:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass") == []


def test_estimate_loads_no_cloud_sdk(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[1] / "examples" / "digits-sklearn.yaml"
    code = f"from cloudtrain.cli.main import cli\ntry:\n    cli.main(['estimate', {str(spec)!r}], standalone_mode=False)\nexcept SystemExit: pass"
    assert loaded_after(code) == []


BACKEND_MODULES = ("cloudtrain.providers.local", "cloudtrain.providers.sagemaker", "cloudtrain.providers.azureml",
                   "cloudtrain.providers.vertex")


def test_no_backend_module_is_imported_by_the_registry_until_used() -> None:
    """Nothing registers itself by import side effect: the registry lists the backends without
    importing their modules; a backend's module is imported when that backend is asked for."""
    listed = "import cloudtrain.providers\nfrom cloudtrain.providers import registry\nassert 'vertex' in registry.names()"
    assert loaded_after(listed, BACKEND_MODULES) == []
    assert loaded_after(f"{listed}\nregistry.provider_class('local')", BACKEND_MODULES) == ["cloudtrain.providers.local"]
