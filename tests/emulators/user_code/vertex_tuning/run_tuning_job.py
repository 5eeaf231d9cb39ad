"""A user's hyperparameter tuning job on Vertex AI, unchanged from what runs against Google Cloud:
a CustomJob staged from a local script is the trial, tuned over a double, an integer and a
categorical parameter with Vertex's default (Bayesian) algorithm; the best trial is picked from the
trials' final measurements and its model read back from its output directory."""

import json
import sys
from pathlib import Path

from google.cloud import aiplatform, storage
from google.cloud.aiplatform import hyperparameter_tuning as hpt

transport = sys.argv[1] if len(sys.argv) > 1 else "grpc"
aiplatform.init(project="my-project", location="us-central1", staging_bucket="gs://my-staging",
                api_transport=transport)

trial_job = aiplatform.CustomJob.from_local_script(
    display_name="tune-x-trial",
    script_path=str(Path(__file__).with_name("trial.py")),
    container_uri="us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
    requirements=[],
    args=["--offset", "0.25"],
    machine_type="n1-standard-4",
)
job = aiplatform.HyperparameterTuningJob(
    display_name="tune-x",
    custom_job=trial_job,
    metric_spec={"loss": "minimize"},
    parameter_spec={
        "x": hpt.DoubleParameterSpec(min=0.0, max=6.0, scale="linear"),
        "layers": hpt.IntegerParameterSpec(min=1, max=4, scale="linear"),
        "activation": hpt.CategoricalParameterSpec(values=["relu", "tanh"]),
    },
    max_trial_count=6,
    parallel_trial_count=2,
)
job.run()

print("job", job.resource_name, job.state.name)
for trial in job.trials:
    values = {p.parameter_id: p.value for p in trial.parameters}
    print("trial", trial.id, trial.state.name, json.dumps(values, sort_keys=True), trial.final_measurement.metrics[0].value)
best = min((t for t in job.trials if t.state.name == "SUCCEEDED"), key=lambda t: t.final_measurement.metrics[0].value)
output = trial_job.job_spec.base_output_directory.output_uri_prefix.rstrip("/")  # each trial writes under <output>/<trial id>
bucket, _, prefix = f"{output}/{best.id}/model/model.json"[len("gs://"):].partition("/")
print("best", best.id, best.final_measurement.metrics[0].value, storage.Client().bucket(bucket).blob(prefix).download_as_text())
