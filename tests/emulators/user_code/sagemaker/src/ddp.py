"""A PyTorch DDP-style script: one process per node, an all-reduce across them, rank 0 saves the result."""

import json
import os

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
print(f"all-reduce rank={rank} world={world} sum={total.item():g} host={os.environ['SM_CURRENT_HOST']}", flush=True)
if rank == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "allreduce.json"), "w") as out:
        json.dump({"sum": total.item(), "world": world}, out)
dist.destroy_process_group()
