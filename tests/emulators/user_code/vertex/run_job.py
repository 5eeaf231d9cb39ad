"""A user's job launcher for Vertex AI, unchanged from what runs against Google Cloud: it stages
task.py as a Python package, runs it on a prebuilt scikit-learn container, then reads the model
back from the job's output directory with google-cloud-storage."""

import pickle
from pathlib import Path

from google.cloud import aiplatform, storage

aiplatform.init(project="my-project", location="us-central1", staging_bucket="gs://my-staging")

job = aiplatform.CustomJob.from_local_script(
    display_name="t",
    script_path=str(Path(__file__).with_name("task.py")),
    container_uri="us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
    requirements=[],
    args=["--epochs", "2"],
    replica_count=1,
    machine_type="n1-standard-4",
)
job.run()

output = job.job_spec.base_output_directory.output_uri_prefix  # gs://my-staging/aiplatform-custom-job-...
bucket_name, _, prefix = output[len("gs://"):].partition("/")
bucket = storage.Client(project="my-project").bucket(bucket_name)
model = pickle.loads(bucket.blob(f"{prefix}/model/model.pkl").download_as_bytes())
metrics = bucket.blob(f"{prefix}/model/metrics.txt").download_as_text()
print("job", job.resource_name, job.state.name)
print("model", type(model).__name__, "classes", len(model.classes_))
print("metrics", metrics.strip())
