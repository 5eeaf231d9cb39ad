"""Neutral accelerator names and the aliases users (and clouds) write for them.

Every offer in the catalog names its accelerator with one of :data:`KNOWN_ACCELERATORS`.
``A10`` (Azure's full NVIDIA A10, 24 GB) and ``A10G`` (AWS's A10G variant) are kept apart: they
are different parts with different prices. ``A100`` means the 40 GB part; the 80 GB part is
``A100-80GB``.
"""

from __future__ import annotations

import re

from cloudtrain.errors import CatalogError

KNOWN_ACCELERATORS: tuple[str, ...] = (
    "T4",
    "L4",
    "A10",
    "A10G",
    "L40S",
    "V100",
    "A100",
    "A100-80GB",
    "H100",
    "H200",
    "Trainium",
)

# Keys are normalised with _key(): lower case, no vendor prefix, separators removed.
_ALIASES: dict[str, str] = {
    "t4": "T4",
    "teslat4": "T4",
    "l4": "L4",
    "a10": "A10",
    "a10g": "A10G",
    "l40s": "L40S",
    "v100": "V100",
    "teslav100": "V100",
    "v10016gb": "V100",
    "a100": "A100",
    "teslaa100": "A100",
    "a10040gb": "A100",
    "a10040g": "A100",
    "a100sxm440gb": "A100",
    "a10080gb": "A100-80GB",
    "a10080g": "A100-80GB",
    "a100-80gb": "A100-80GB",
    "h100": "H100",
    "h10080gb": "H100",
    "h100mega80gb": "H100",
    "h100nvl": "H100",
    "h200": "H200",
    "h200141gb": "H200",
    "trainium": "Trainium",
    "trainium1": "Trainium",
    "trn1": "Trainium",
    "awstrainium": "Trainium",
}


def _key(name: str) -> str:
    key = name.strip().lower()
    key = re.sub(r"^(nvidia|aws)[\s_\-]*", "", key)
    return re.sub(r"[\s_\-]", "", key)


def normalize_accelerator(name: str) -> str:
    """The neutral name for ``name`` (case-insensitive; ``nvidia-tesla-t4``, ``A100-40GB``...).

    Raises :class:`CatalogError` naming the known accelerators when ``name`` is unknown.
    """
    if isinstance(name, str):
        canonical = _ALIASES.get(_key(name))
        if canonical is not None:
            return canonical
    raise CatalogError(
        f"Unknown accelerator {name!r}.",
        hint="Known accelerators: " + ", ".join(KNOWN_ACCELERATORS) + ".",
    )
