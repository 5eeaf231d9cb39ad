"""Neutral accelerator names and the aliases users (and clouds) write for them.

Every offer in the catalog names its accelerator with one of :data:`KNOWN_ACCELERATORS`.
``A10`` (Azure's full NVIDIA A10, 24 GB) and ``A10G`` (AWS's A10G variant) are kept apart: they
are different parts with different prices. ``A100`` means the 40 GB part; the 80 GB part is
``A100-80GB``. ``H100-MEGA`` is Google's A3 Mega part (``NVIDIA_H100_MEGA_80GB``, a3-megagpu-8g),
kept apart from ``H100`` (a3-highgpu, AWS p5, Azure ND H100 v5). TPU generations are
``TPU-v2`` ... ``TPU-v6e``; ``Trainium2`` is AWS's second Trainium (trn2).
"""

from __future__ import annotations

import functools
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
    "H100-MEGA",
    "H200",
    "B200",
    "B300",
    "GB200",
    "RTX-PRO-4500",
    "RTX-PRO-6000",
    "K80",
    "P4",
    "P100",
    "MI300X",
    "Trainium",
    "Trainium2",
    "TPU-v2",
    "TPU-v3",
    "TPU-v4",
    "TPU-v5e",
    "TPU-v5p",
    "TPU-v6e",
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
    "h100mega": "H100-MEGA",
    "h100mega80gb": "H100-MEGA",
    "h100nvl": "H100",
    "h200": "H200",
    "h200141gb": "H200",
    "trainium": "Trainium",
    "trainium1": "Trainium",
    "trn1": "Trainium",
    "awstrainium": "Trainium",
    "trainium2": "Trainium2",
    "trn2": "Trainium2",
    "awstrainium2": "Trainium2",
    "b200": "B200",
    "b300": "B300",
    "gb200": "GB200",
    "rtxpro4500": "RTX-PRO-4500",
    "rtxpro6000": "RTX-PRO-6000",
    "rtxproserver6000": "RTX-PRO-6000",
    "k80": "K80",
    "teslak80": "K80",
    "p4": "P4",
    "teslap4": "P4",
    "p100": "P100",
    "teslap100": "P100",
    "mi300x": "MI300X",
    "amdmi300x": "MI300X",
    "instinctmi300x": "MI300X",
    "tpuv2": "TPU-v2",
    "v2": "TPU-v2",
    "tpuv3": "TPU-v3",
    "v3": "TPU-v3",
    "tpuv4": "TPU-v4",
    "tpuv4pod": "TPU-v4",
    "v4": "TPU-v4",
    "tpuv5e": "TPU-v5e",
    "tpuv5lite": "TPU-v5e",
    "tpuv5litepod": "TPU-v5e",
    "v5e": "TPU-v5e",
    "v5litepod": "TPU-v5e",
    "tpuv5p": "TPU-v5p",
    "v5p": "TPU-v5p",
    "tpuv6e": "TPU-v6e",
    "v6e": "TPU-v6e",
    "trillium": "TPU-v6e",
}


@functools.lru_cache(maxsize=512)  # the machine tables name a few accelerators hundreds of times
def _key(name: str) -> str:
    key = name.strip().lower()
    key = re.sub(r"^(nvidia|aws|amd|google)[\s_\-]*", "", key)
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
