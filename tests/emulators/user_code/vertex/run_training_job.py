"""A user's Vertex AI CustomTrainingJob, unchanged from what runs against Google Cloud: the SDK stages
task.py, the training pipeline runs it on a prebuilt container, and the model is read back from the
job's output directory with google-cloud-storage."""

import pickle
from pathlib import Path

from google.cloud import aiplatform, storage

aiplatform.init(project="my-project", location="us-central1", staging_bucket="gs://my-pipelines")

job = aiplatform.CustomTrainingJob(
    display_name="training",
    script_path=str(Path(__file__).with_name("task.py")),
    container_uri="us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
)
job.run(args=["--epochs", "3"], replica_count=1, machine_type="n1-standard-4",
        base_output_dir="gs://my-pipelines/training-output")

bucket = storage.Client(project="my-project").bucket("my-pipelines")
model = pickle.loads(bucket.blob("training-output/model/model.pkl").download_as_bytes())
print("pipeline", job.resource_name, job.state.name)
print("model", type(model).__name__, "classes", len(model.classes_))
print("metrics", bucket.blob("training-output/model/metrics.txt").download_as_text().strip())
