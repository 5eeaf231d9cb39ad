"""Entry points read from ``entry_points.txt`` files: pydantic still gets the plugins it would load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
import importlib.metadata as metadata
scans = []
full_scan = metadata.entry_points
metadata.entry_points = lambda *a, **k: scans.append(1) or full_scan(*a, **k)
import cloudtrain.spec  # fills pydantic's plugin cache before its first model is built
from pydantic.plugin import _loader
import pydantic

class M(pydantic.BaseModel):
    x: int

M(x=1)
import fakeplug
print(json.dumps({"loaded": sorted(_loader._plugins or {}), "schemas": fakeplug.SEEN, "scans": len(scans)}))
"""


def _fake_plugin(root: Path) -> None:
    (root / "fakeplug.py").write_text(
        "SEEN = []\n"
        "class Plugin:\n"
        "    def new_schema_validator(self, schema, schema_type, schema_type_path, schema_kind, config, plugin_settings):\n"
        "        SEEN.append(schema_type_path.name)\n"
        "        return None, None, None\n"
        "plugin = Plugin()\n")
    info = root / "fakeplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pydantic]\nfake = fakeplug:plugin\n")


def _probe(root: Path, **env: str) -> dict:
    full = {key: value for key, value in os.environ.items() if key != "PYDANTIC_DISABLE_PLUGINS"}
    full.update(PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_pydantic_plugins_are_loaded_from_the_fast_reader(tmp_path: Path) -> None:
    _fake_plugin(tmp_path)
    seen = _probe(tmp_path)
    assert seen["loaded"] == ["fakeplug:plugin"]
    assert "M" in seen["schemas"]  # the plugin took part in building a model, as pydantic's loader would have it
    assert seen["scans"] == 0  # and pydantic did not read every distribution's metadata itself


def test_pydantic_disable_plugins_is_honoured(tmp_path: Path) -> None:
    _fake_plugin(tmp_path)
    assert _probe(tmp_path, PYDANTIC_DISABLE_PLUGINS="fake")["schemas"] == []


def test_select_takes_the_first_distribution_of_a_name(tmp_path: Path) -> None:
    for where, target in [("a", "first:X"), ("b", "second:X")]:
        info = tmp_path / where / "pkg-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[cloudtrain.test_group]\nname = {target}\n")
    code = ("import sys, json; sys.path[:0] = sys.argv[1:]\n"
            "from cloudtrain import entry_points\n"
            "print(json.dumps([(e.name, e.value) for e in entry_points.select('cloudtrain.test_group')]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a"), str(tmp_path / "b")],
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == [["name", "first:X"]]


NO_PLUGIN_PROBE = """
import json, sys
import cloudtrain.spec
import pydantic

class M(pydantic.BaseModel):
    x: int

M(x=1)
from pydantic.plugin import _loader
shim = type(_loader).__name__
metadata_imported = "importlib.metadata" in sys.modules
group = _loader.PYDANTIC_ENTRY_POINT_GROUP  # a name the stand-in lacks: the real loader answers
print(json.dumps({"shim": shim, "metadata": metadata_imported, "group": group,
                  "now": type(sys.modules["pydantic.plugin._loader"]).__name__, "plugins": list(sys.modules["pydantic.plugin._loader"].get_plugins())}))
"""


def test_without_a_declared_plugin_pydantic_s_loader_and_importlib_metadata_stay_unimported() -> None:
    out = subprocess.run([sys.executable, "-c", NO_PLUGIN_PROBE], capture_output=True, text=True, timeout=120,
                         env={key: value for key, value in os.environ.items() if key != "PYDANTIC_DISABLE_PLUGINS"})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["shim"] == "NoPydanticPlugins" and seen["metadata"] is False
    # any other name brings in pydantic's own loader, which then finds no plugins either
    assert seen["group"] == "pydantic" and seen["now"] == "module" and seen["plugins"] == []
