"""Where cloudtrain keeps its own files: ``$CLOUDTRAIN_HOME``, else ``~/.cloudtrain``.

Inside it: ``jobs.db`` (the job store) and ``catalog/`` (price caches written by
``cloudtrain prices refresh``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    return Path(os.environ.get("CLOUDTRAIN_HOME") or Path.home() / ".cloudtrain")


def catalog_cache_dir() -> Path:
    return home_dir() / "catalog"
