"""A training script that only records what each of its processes sees, then exits (no torch).

Each process writes ``<record dir>/<pid>.json``: the distribution variables of its environment and
what :func:`cloudtrain.runtime.context` makes of them. The record directory is the script's first
argument, or ``CLOUDTRAIN_RECORD_DIR``.
"""

RECORDER = r'''
import json, os, sys
from pathlib import Path
from cloudtrain.runtime import context

KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
        "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "TF_CONFIG", "CLUSTER_SPEC",
        "SM_CURRENT_HOST", "SM_HOSTS", "SM_CURRENT_INSTANCE_GROUP", "CLOUDTRAIN_POOL", "CLOUDTRAIN_PROCESSES_PER_NODE",
        "AZUREML_NODE_COUNT")
args = [a for a in sys.argv[1:] if not a.startswith("--")]
target = Path(os.environ.get("CLOUDTRAIN_RECORD_DIR") or args[0])
target.mkdir(parents=True, exist_ok=True)
ctx = context()
record = {"env": {k: os.environ[k] for k in KEYS if k in os.environ},
          "rank": ctx.rank, "world_size": ctx.world_size, "local_rank": ctx.local_rank, "node_rank": ctx.node_rank,
          "num_nodes": ctx.num_nodes, "pool": ctx.pool, "task_type": ctx.task_type, "is_main": ctx.is_main,
          "environment": ctx.environment}
(target / f"{os.getpid()}.json").write_text(json.dumps(record))
print(f"recorded rank={ctx.rank} world={ctx.world_size} local={ctx.local_rank} node={ctx.node_rank}", flush=True)
'''


def records(directory):  # type: ignore[no-untyped-def]
    import json
    from pathlib import Path

    return sorted((json.loads(p.read_text()) for p in Path(directory).glob("*.json")), key=lambda r: (r["rank"], r.get("task_type") or ""))
