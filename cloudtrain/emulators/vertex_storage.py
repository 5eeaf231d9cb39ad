"""The Vertex AI emulator's Cloud Storage: ``gcp-storage-emulator`` in memory, which
``google-cloud-storage`` reaches through ``STORAGE_EMULATOR_HOST``.

One difference from the plain emulator, on purpose: a bucket is created on its first upload (a
user's ``staging_bucket`` or output bucket need not be created by hand first, as they would already
exist in the user's project). Reading or listing a bucket that was never written still answers 404.
"""

from __future__ import annotations

from typing import Any


def _storage_class() -> type:
    from gcp_storage_emulator.handlers.buckets import create_bucket
    from gcp_storage_emulator.storage import Storage

    class BucketsOnFirstUpload(Storage):  # type: ignore[misc,valid-type]
        def create_file(self, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
            create_bucket(bucket_name, self)  # no-op when it exists
            return super().create_file(bucket_name, *args, **kwargs)

        def create_resumable_upload(self, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
            create_bucket(bucket_name, self)
            return super().create_resumable_upload(bucket_name, *args, **kwargs)

    return BucketsOnFirstUpload


class StorageServer:
    """The storage emulator on ``host:port`` with ``bucket`` created empty."""

    def __init__(self, host: str, port: int, bucket: str | None = None) -> None:
        from gcp_storage_emulator.handlers.buckets import create_bucket
        from gcp_storage_emulator.server import APIThread

        self.host, self.port = host, port
        self.storage = _storage_class()(use_memory_fs=True)
        if bucket:
            create_bucket(bucket, self.storage)
        self._api = APIThread(host, port, self.storage, daemon=True)

    def start(self) -> "StorageServer":
        self._api.start()
        self._api.is_running.wait()
        return self

    def stop(self) -> None:
        self._api.join(timeout=1)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
