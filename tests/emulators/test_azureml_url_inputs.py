"""An https:// input reaches Azure ML through the real SDK as a uri_file input with that path (it
used to be rendered as ``azureml:https://...``, which the SDK then failed to parse)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("responses")

from cloudtrain.emulators.azureml import AzureMLEmulator  # noqa: E402
from cloudtrain.providers.azureml import AzureMLProvider  # noqa: E402
from cloudtrain.runner import Runner  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402
from cloudtrain.store import JobStore  # noqa: E402

URL = "https://127.0.0.1:9/digits/train.csv"  # loopback, nothing listens: the request is what is checked


def test_an_https_input_is_submitted_with_its_own_path(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('never reached')\n")
    (tmp_path / "code" / "job.yaml").write_text(f"name: url-input\ncode: .\nentrypoint: train.py\nframework: {{name: sklearn}}\n"
                                                f"resources: {{cpus: 2}}\ninputs: {{train: '{URL}'}}\n")
    with AzureMLEmulator(tmp_path / "emulator", grace_seconds=2.0) as emulator:
        overrides = [f"azureml.{key}={value}" for key, value in emulator.settings.items()]
        runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"azureml": AzureMLProvider(client=emulator.ml_client())})
        record = runner.submit(runner.plan(load_spec(tmp_path / "code" / "job.yaml", overrides), "azureml")).record
        sent = emulator.service.jobs[record.id]["properties"]["inputs"]["train"]
        assert (sent["jobInputType"], sent["uri"]) == ("uri_file", URL)
        emulator.wait_for_status(record.id)
