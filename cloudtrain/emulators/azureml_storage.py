"""Blob storage of the Azure ML emulator: one storage account whose blobs are files under
``<root>/<container>/<blob name>``, and the subset of the Blob service REST API that
azure-storage-blob uses for the SDK's uploads and downloads (put blob, put block / block list,
set metadata, get / head with ranges, list blobs)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any


class BlobStore:
    """Blob storage for one account: ``<root>/<container>/<blob name>`` files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, container: str, name: str) -> Path:
        target = (self.root / container / name).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError("blob name escapes the container")
        return target

    def put(self, container: str, name: str, data: bytes) -> None:
        """Write a blob whole: a reader sees the old blob or the new one, never part of it."""
        target = self.path(container, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)

    def list(self, container: str, prefix: str = "") -> list[str]:
        base = self.root / container
        if not base.is_dir():
            return []
        names = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() and not is_partial(p.name))
        return sorted(n for n in names if n.startswith(prefix))



def is_partial(name: str) -> bool:
    """Whether ``name`` is a blob being written (:meth:`BlobStore.put`), not a blob."""
    return name.startswith(".") and name.endswith(".partial")


def blob_response(blobs: BlobStore, request: Any, path: str, blob_base: str) -> tuple[int, dict[str, str], Any]:
    """Answer one Blob service request (``path`` is ``/<container>/<blob name>``)."""
    container, _, name = path.lstrip("/").partition("/")
    args = request.args
    if args.get("restype") == "container":
        if args.get("comp") == "list":
            return list_blobs(blobs, container, args.get("prefix", ""), blob_base)
        return 200, {"ETag": '"0x1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, b""
    try:
        target = blobs.path(container, name)
    except ValueError:
        return 400, {"x-ms-error-code": "InvalidResourceName"}, b""
    stamp = {"ETag": f'"0x{uuid.uuid4().hex[:12]}"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
             "x-ms-request-server-encrypted": "true"}
    if request.method == "PUT":
        if args.get("comp") in ("metadata", "properties"):
            return 200, stamp, b""
        if args.get("comp") == "block":  # staged blocks of a large upload
            blocks = blobs.root / ".blocks" / container / name
            blocks.mkdir(parents=True, exist_ok=True)
            (blocks / args["blockid"].replace("/", "_")).write_bytes(request.get_data())
            return 201, stamp, b""
        if args.get("comp") == "blocklist":
            ids = re.findall(rb"<(?:Latest|Committed|Uncommitted)>([^<]+)<", request.get_data())
            blocks = blobs.root / ".blocks" / container / name
            data = b"".join((blocks / i.decode().replace("/", "_")).read_bytes() for i in ids)
            blobs.put(container, name, data)
            return 201, stamp, b""
        blobs.put(container, name, request.get_data())
        return 201, {**stamp, "Content-MD5": ""}, b""
    if request.method in ("GET", "HEAD") and target.is_file():
        data = target.read_bytes()
        headers = {**stamp, "Content-Type": "application/octet-stream", "x-ms-blob-type": "BlockBlob",
                   "Content-Length": str(len(data)), "Accept-Ranges": "bytes"}
        span = re.match(r"bytes=(\d+)-(\d*)", request.headers.get("x-ms-range") or request.headers.get("Range") or "")
        if span and request.method == "GET":
            start = int(span.group(1))
            end = min(int(span.group(2)) if span.group(2) else len(data) - 1, len(data) - 1)
            part = data[start:end + 1]
            headers.update({"Content-Range": f"bytes {start}-{end}/{len(data)}", "Content-Length": str(len(part))})
            return 206, headers, part
        return 200, headers, data
    return 404, {"x-ms-error-code": "BlobNotFound"}, b""

def list_blobs(blobs: BlobStore, container: str, prefix: str, blob_base: str) -> tuple[int, dict[str, str], Any]:
    from xml.sax.saxutils import escape

    items = []
    for name in blobs.list(container, prefix):
        size = blobs.path(container, name).stat().st_size
        items.append(f"<Blob><Name>{escape(name)}</Name><Properties><Content-Length>{size}</Content-Length>"
                     f"<BlobType>BlockBlob</BlobType><Last-Modified>Mon, 01 Jan 2024 00:00:00 GMT</Last-Modified>"
                     f"<Etag>0x1</Etag></Properties><Metadata /></Blob>")
    xml = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{blob_base}/" '
           f'ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix><Blobs>{"".join(items)}</Blobs>'
           f"<NextMarker /></EnumerationResults>")
    return 200, {"Content-Type": "application/xml"}, xml.encode()
