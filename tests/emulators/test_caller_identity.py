"""A job an emulator runs never acts as the emulator's caller: the caller's cloud credentials (in
variables or in the SDKs' files under HOME) do not reach it; what the job's cloud gives it does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cloudtrain.emulators.common import CALLER_IDENTITY, without_inherited

PROBE = ("import json, os; print(json.dumps({k: os.environ.get(k) for k in "
         "['AWS_SECRET_ACCESS_KEY', 'AZURE_CLIENT_SECRET', 'GOOGLE_APPLICATION_CREDENTIALS', 'AWS_SHARED_CREDENTIALS_FILE', "
         "'CLOUDSDK_CONFIG', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'CLOUDTRAIN_JOB_ID']}))")


def test_the_callers_identity_never_reaches_a_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "callers-aws-secret")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "callers-azure-secret")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/home/caller/key.json")
    monkeypatch.setenv("CLOUDTRAIN_JOB_ID", "the-callers-own-job")
    job_env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/role"}  # what the cloud gives the job
    argv = without_inherited([sys.executable, "-c", PROBE], job_env)
    seen = json.loads(subprocess.run(argv, env={**os.environ, **job_env}, capture_output=True, text=True, check=True,
                                     timeout=60).stdout)
    assert seen == {"AWS_SECRET_ACCESS_KEY": None, "AZURE_CLIENT_SECRET": None, "GOOGLE_APPLICATION_CREDENTIALS": None,
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "CLOUDSDK_CONFIG": "/nonexistent/gcloud",
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/role", "CLOUDTRAIN_JOB_ID": None}


def test_a_jobs_own_setting_of_a_hidden_file_wins() -> None:
    argv = without_inherited(["true"], {"AWS_CONFIG_FILE": "/job/config"})
    assert "AWS_CONFIG_FILE=/dev/null" not in argv and "AWS_SHARED_CREDENTIALS_FILE=/dev/null" in argv
    assert "AZURE_CLIENT_SECRET" in CALLER_IDENTITY


def test_a_sagemaker_jobs_role_credentials_are_issued_again_before_they_expire() -> None:
    import datetime

    from cloudtrain.emulators.sagemaker import SageMakerEmulator

    class Run:
        name = "job-1"
        request = {"RoleArn": "arn:aws:iam::123456789012:role/cloudtrain-emulator"}

    with SageMakerEmulator() as emulator:
        first = emulator.job_credentials(Run())
        assert emulator.job_credentials(Run()) == first  # still valid: the same ones
        emulator._credentials["job-1"]["_expires"] = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        renewed = emulator.job_credentials(Run())
    assert renewed["AccessKeyId"] != first["AccessKeyId"] and set(renewed) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
