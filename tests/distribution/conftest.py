"""This directory's helper modules (``backends``, ``recorder``) import by name in its tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
