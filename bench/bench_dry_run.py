"""Dry-run figures: `cloudtrain submit EXAMPLE --cloud C --dry-run` wall time per cloud (target < 0.6 s).

Prints figures only (no assertions). The clouds' settings come from CLOUDTRAIN_<BACKEND>_<KEY>
variables with placeholder values; nothing is sent anywhere (a dry run renders the request only).
``cloudtrain estimate`` of the same spec is printed first: the same CLI start, spec load and plan
without a render, so the difference is what rendering and validating the request cost. Others'
processes on the machine inflate every figure: compare the best of several runs, with
PYTHONDONTWRITEBYTECODE unset (or every command compiles the modules again).
Usage: ``python bench/bench_dry_run.py [examples/NAME.yaml ...] [--runs N] [--clouds sagemaker,vertex]``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile

from _timing import BIN, REPO, time_command

CLOUDS = ("sagemaker", "azureml", "vertex")
SETTINGS = {
    "CLOUDTRAIN_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/Training",
    "CLOUDTRAIN_SAGEMAKER_BUCKET": "stage",
    "CLOUDTRAIN_AZUREML_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
    "CLOUDTRAIN_AZUREML_RESOURCE_GROUP": "rg",
    "CLOUDTRAIN_AZUREML_WORKSPACE": "ws",
    "CLOUDTRAIN_VERTEX_PROJECT": "proj",
    "CLOUDTRAIN_VERTEX_STAGING_BUCKET": "gs://stage",
}
DEFAULT_EXAMPLES = ["examples/digits-cnn.yaml"]
TARGET_SECONDS = 0.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="*", default=DEFAULT_EXAMPLES)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--clouds", default=",".join(CLOUDS), help="comma-separated, of " + ", ".join(CLOUDS))
    options = parser.parse_args()
    clouds = [cloud for cloud in options.clouds.split(",") if cloud]
    unknown = sorted(set(clouds) - set(CLOUDS))
    if unknown:
        parser.error(f"--clouds: unknown {', '.join(unknown)} (known: {', '.join(CLOUDS)})")
    with tempfile.TemporaryDirectory() as home:
        env = {"CLOUDTRAIN_HOME": home, **SETTINGS}
        print(f"{'python -c pass (floor)':62s} median {time_command([str(BIN / 'python'), '-c', 'pass'])[0] * 1000:7.1f} ms")
        for example in options.examples:
            runs = [(f"estimate {example} --cloud {clouds[0]}", ["estimate", str(REPO / example), "--cloud", clouds[0]])]
            runs += [(f"submit {example} --cloud {cloud} --dry-run", ["submit", str(REPO / example), "--cloud", cloud, "--dry-run"])
                     for cloud in clouds]
            for label, command in runs:
                argv = [str(BIN / "cloudtrain"), *command]
                try:
                    median, best = time_command(argv, runs=options.runs, env=env, cwd=REPO)
                except subprocess.CalledProcessError as error:
                    reason = (error.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
                    print(f"{label:62s} FAILED: {reason[0]}")
                    continue
                verdict = "  OK" if median < TARGET_SECONDS else f"  OVER the {TARGET_SECONDS} s target"
                verdict = "" if command[0] == "estimate" else verdict  # the reference, not a dry run
                print(f"{label:62s} median {median * 1000:7.1f} ms   best {best * 1000:7.1f} ms{verdict}")


if __name__ == "__main__":
    main()
