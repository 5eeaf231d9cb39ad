"""Each PyTorch entrypoint runs unchanged on the SageMaker emulator (SM_* contract, S3 model upload)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("moto")

from cloudtrain.emulators.sagemaker import SageMakerEmulator  # noqa: E402
from cloudtrain.providers.base import JobState  # noqa: E402
from cloudtrain.providers.sagemaker import SageMakerProvider  # noqa: E402
from cloudtrain.runner import Runner  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

CASES = {
    "digits-cnn.yaml": (["hyperparameters.epochs=2", "hyperparameters.checkpoint_every_steps=10"], "test_accuracy"),
    "tiny-transformer.yaml": (["hyperparameters.epochs=1", "hyperparameters.d_model=32", "hyperparameters.n_layers=1",
                               "hyperparameters.block_size=32", "hyperparameters.stride=256"], "test_perplexity"),
}


@pytest.mark.parametrize("example", sorted(CASES))
def test_entrypoint_runs_unchanged_on_the_sagemaker_emulator(example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides, metric = CASES[example]
    with SageMakerEmulator(root=tmp_path / "sm") as emulator:
        for key, value in emulator.environment().items():
            monkeypatch.setenv(key, value)
        runner = Runner(providers={"sagemaker": SageMakerProvider()})
        plan = runner.plan(load_spec(REPO / "examples" / example, overrides), "sagemaker")
        record = runner.submit(plan).record
        _, status = runner.wait(record.id, poll_seconds=0.2, timeout=600)
        logs = "\n".join(runner.logs(record.id))
        assert status.state is JobState.SUCCEEDED, logs[-3000:]
        assert f"cloudtrain-metric name={metric}" in logs
        assert status.model_uri and status.model_uri.endswith("model.tar.gz")
        checkpoints = [k for k in emulator_keys(emulator) if "/checkpoints/" in k]
        assert checkpoints, "the checkpoint directory was synced to CheckpointConfig.S3Uri"


def emulator_keys(emulator) -> list[str]:  # type: ignore[no-untyped-def]
    import boto3

    s3 = boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=emulator.bucket).get("Contents", [])]
