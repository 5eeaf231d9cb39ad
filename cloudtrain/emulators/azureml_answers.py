"""What the Azure ML emulator's ARM, data-plane and Key Vault routes answer with: a status, headers
and a JSON body (:data:`Response`), Azure's error body (:func:`azure_error`), and Azure's UTC
timestamps (:func:`now_iso`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

Response = tuple[int, dict[str, str], Any]


def azure_error(status: int, code: str, message: str) -> Response:
    """Azure's error answer: ``x-ms-error-code`` and ``{"error": {"code", "message"}}``."""
    return status, {"x-ms-error-code": code}, {"error": {"code": code, "message": message}}


def now_iso() -> str:
    """Now, as Azure writes times: UTC to the millisecond, ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
