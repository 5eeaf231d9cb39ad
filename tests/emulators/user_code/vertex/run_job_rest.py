"""A user's Vertex AI job over the REST transport, unchanged from what runs against Google Cloud: it
runs task.py with CustomJob.from_local_script, then reads the job's log with google-cloud-logging
(gRPC, its default) as the Cloud Console's Logs Explorer would show it."""

from pathlib import Path

from google.cloud import aiplatform
from google.cloud import logging as cloud_logging

aiplatform.init(project="my-project", location="us-central1", staging_bucket="gs://my-rest-staging",
                api_transport="rest")

job = aiplatform.CustomJob.from_local_script(
    display_name="rest",
    script_path=str(Path(__file__).with_name("task.py")),
    container_uri="us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
    args=["--epochs", "4"],
    replica_count=1,
    machine_type="n1-standard-4",
)
job.run()
print("job", job.resource_name, job.state.name)

job_id = job.resource_name.rsplit("/", 1)[-1]
client = cloud_logging.Client(project="my-project")
for entry in client.list_entries(filter_=f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'):
    print("log", entry.resource.labels.get("task_name"), entry.payload)
