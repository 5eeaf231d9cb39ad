"""Launcher used inside cloud jobs whose platform hands inputs and outputs as arguments (Azure ML).

    python -m cloudtrain.runtime.launch --input train=${{inputs.train}} \
        --output model=${{outputs.model}} --hps '{"lr": 0.01}' -- python entrypoints/train.py --epochs 3

It records the bindings in ``CLOUDTRAIN_INPUTS`` / ``CLOUDTRAIN_OUTPUTS`` / ``CLOUDTRAIN_HPS`` (what
:func:`cloudtrain.runtime.context` reads) and replaces itself with the entrypoint's command, so the
entrypoint's own argument parsing never sees them. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"cloudtrain launch: {flag} expects NAME=PATH, got {value!r}")
        out[name] = path
    return out


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """(environment additions, command) from the launcher's arguments."""
    if "--" not in argv:
        raise SystemExit("cloudtrain launch: put the entrypoint command after '--'")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m cloudtrain.runtime.launch")
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("--output", action="append", default=[])
    parser.add_argument("--hps", default=None)
    options = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        raise SystemExit("cloudtrain launch: no command after '--'")
    env = {
        "CLOUDTRAIN_INPUTS": json.dumps(_pairs(options.input, "--input")),
        "CLOUDTRAIN_OUTPUTS": json.dumps(_pairs(options.output, "--output")),
    }
    if options.hps is not None:
        json.loads(options.hps)  # fail here, not inside the job, on a malformed value
        env["CLOUDTRAIN_HPS"] = options.hps
    return env, command


def main(argv: list[str] | None = None) -> None:
    env, command = parse(sys.argv[1:] if argv is None else argv)
    os.environ.update(env)
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
