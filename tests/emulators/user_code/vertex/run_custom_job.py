"""A user's Vertex AI job from worker pool specs, unchanged from what runs against Google Cloud: it
builds the trainer package (setup.py sdist), uploads it and the data with google-cloud-storage, runs
it on a prebuilt container and reads the model back from the base output directory."""

import json
import subprocess
import sys
from pathlib import Path

from google.cloud import aiplatform, storage

here = Path(__file__).resolve().parent
subprocess.run([sys.executable, "setup.py", "--quiet", "sdist", "--dist-dir", str(here / "dist")],
               cwd=here / "trainer_package", check=True)
client = storage.Client(project="my-project")
client.bucket("my-data").blob("values.csv").upload_from_filename(str(here / "data" / "values.csv"))
client.bucket("my-staging").blob("packages/trainer-0.1.tar.gz").upload_from_filename(str(here / "dist" / "trainer-0.1.tar.gz"))

aiplatform.init(project="my-project", location="us-central1", staging_bucket="gs://my-staging")
job = aiplatform.CustomJob(
    display_name="custom",
    worker_pool_specs=[{
        "machine_spec": {"machine_type": "n1-standard-4"},
        "replica_count": 1,
        "python_package_spec": {
            "executor_image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
            "package_uris": ["gs://my-staging/packages/trainer-0.1.tar.gz"],
            "python_module": "trainer.task",
            "args": ["--data", "gs://my-data/values.csv", "--scale", "2"],
        },
    }],
    base_output_dir="gs://my-output/custom-run",
)
job.run()

model = json.loads(client.bucket("my-output").blob("custom-run/model/model.json").download_as_text())
print("job", job.resource_name, job.state.name)
print("model", json.dumps(model, sort_keys=True))
