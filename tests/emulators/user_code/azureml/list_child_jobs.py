"""Print a job's status and its child jobs (a pipeline's steps, a sweep's trials; none for a command job)."""

import sys

from azure.ai.ml import MLClient
from azure.identity import DefaultAzureCredential

SUBSCRIPTION_ID = "6a1c9e4f-2b7d-4c3a-9f10-5e8d2b4a7c61"
RESOURCE_GROUP = "ml-team"
WORKSPACE = "ml-workspace"

ml_client = MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE)
parent = ml_client.jobs.get(sys.argv[1])
children = list(ml_client.jobs.list(parent_job_name=parent.name))
print(f"job {parent.name} ({parent.type}) is {parent.status} with {len(children)} child jobs", flush=True)
for child in children:
    print(f"  {child.name}: {child.status}")
