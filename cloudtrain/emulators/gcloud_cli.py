"""What the gcloud CLI (``gcloud storage``, and ``gsutil`` through it) needs to reach the Vertex
emulator's Cloud Storage, in a user's shell and in the emulator's jobs.

Google's samples move their data with ``gcloud storage cp`` / ``gsutil cp`` (notebook cells and
trainers alike). gcloud honours, through its properties' variables:

- ``CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE``: the storage emulator's address, for its JSON API;
- ``CLOUDSDK_AUTH_ACCESS_TOKEN_FILE``: a file holding the emulator's access token (the metadata
  server's), so gcloud needs no login (on Vertex it has the replica's service account);
- ``CLOUDSDK_CORE_PROJECT``: the emulator's project;
- ``CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK``: no update check (it would go out to Google);
- ``BOTO_CONFIG``: a boto file with ``[GSUtil] use_gcloud_storage = True``, so ``gsutil`` commands run
  as ``gcloud storage`` ones, with the same endpoint and token.

A job gets a gcloud configuration folder of its own (``CLOUDSDK_CONFIG``, set by the job runner),
as a fresh container has, never the caller's.
"""

from __future__ import annotations

from pathlib import Path


def gcloud_files(directory: Path, token: str) -> dict[str, Path]:
    """Write the access-token file and the boto file into ``directory``; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    token_file, boto = directory / "access-token", directory / "boto.cfg"
    token_file.write_text(token)
    token_file.chmod(0o600)
    boto.write_text("[GSUtil]\nuse_gcloud_storage = True\n")
    return {"token": token_file, "boto": boto}


def gcloud_environment(storage_host: str, project: str, files: dict[str, Path]) -> dict[str, str]:
    """The variables that point gcloud and gsutil at the storage emulator at ``storage_host``
    (``http://host:port``)."""
    return {"CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": storage_host.rstrip("/") + "/",
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(files["token"]), "CLOUDSDK_CORE_PROJECT": project,
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true", "BOTO_CONFIG": str(files["boto"])}
