"""Checkpoint files for the PyTorch entrypoints: atomic writes with a hash sidecar, resuming from
the newest valid one, and the RNG states a checkpoint carries (see :mod:`torch_common` for when
they are written).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def replace_atomically(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def save_checkpoint(directory: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    """Write ``payload`` atomically as ``step-<step>.pt`` with its hash sidecar; prune old ones."""
    path = directory / f"step-{step:08d}.pt"
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    torch.save(payload, tmp)
    digest = _sha256(tmp)
    replace_atomically(tmp, path)
    sidecar_tmp = directory / f".{path.name}.sha256.tmp-{os.getpid()}"
    sidecar_tmp.write_text(json.dumps({"sha256": digest, "step": step}))
    replace_atomically(sidecar_tmp, path.with_name(path.name + ".sha256"))
    for stale in directory.glob(".step-*.tmp-*"):  # left by a killed run
        if not stale.name.endswith(f"-{os.getpid()}"):
            stale.unlink(missing_ok=True)
    for old in sorted(directory.glob("step-*.pt"))[:-max(1, keep)]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return path


def load_newest_checkpoint(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint whose sidecar hash matches and that loads, or None. Checkpoints
    without a sidecar (killed between the two renames) count when ``torch.load`` accepts them."""
    for path in sorted(directory.glob("step-*.pt"), reverse=True):
        sidecar = path.with_name(path.name + ".sha256")
        try:
            if sidecar.exists() and json.loads(sidecar.read_text())["sha256"] != _sha256(path):
                raise ValueError("content does not match its sha256")
            return path, torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated, corrupted or unreadable: try an older one
            print(f"skipping checkpoint {path.name}: {error}", flush=True)
    return None
