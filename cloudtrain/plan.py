"""Resolving a spec into a Plan: where and how one submission of a job will run.

``make_plan`` is a pure function of the spec, the catalog, the cloud settings and the two values
that make a submission unique (the time and a random token, both passed in by the caller). It picks
the offer (instance type, region, prices) for a cloud, the number of worker processes per node, the
job name and the staging locations, and computes the cost upper bound. Providers render Plans; they
never look at the catalog themselves.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import CatalogError, UsageError
from cloudtrain.spec import CLOUDS, JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.catalog import Catalog, Offer
    from cloudtrain.cost import CostEstimate

BACKENDS = ("local", *CLOUDS)


@dataclass(frozen=True)
class Plan:
    """Everything a provider needs to render one submission of a job."""

    spec: JobSpec
    cloud: str
    job_name: str
    submission_token: str
    created_at: datetime
    nodes: int
    processes_per_node: int
    region: str | None = None
    offer: "Offer | None" = None
    spot: bool = False
    estimate: "CostEstimate | None" = None
    settings: dict[str, Any] = field(default_factory=dict)  # the cloud's settings, merged from config layers
    runs_dir: Path | None = None  # local backend: where run directories go

    @property
    def instance_type(self) -> str | None:
        return self.offer.instance_type if self.offer else None

    @property
    def max_runtime_seconds(self) -> int | None:
        runtime = self.spec.max_runtime
        return int(runtime.total_seconds()) if runtime else None

    @property
    def max_wait_seconds(self) -> int | None:
        """For spot jobs: the longest total time including waits (default twice the run time)."""
        if not self.spot:
            return None
        if self.spec.spot.max_wait:
            return int(self.spec.spot.max_wait.total_seconds())
        runtime = self.max_runtime_seconds
        return 2 * runtime if runtime else None

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


def new_submission(now: datetime | None = None) -> tuple[datetime, str]:
    """The time and random token that make one submission unique (the only impure inputs of a plan)."""
    return (now or datetime.now(timezone.utc)).replace(microsecond=0), secrets.token_hex(3)


def job_name(spec: JobSpec, created_at: datetime, token: str) -> str:
    """``<spec name>-<yyyymmdd-hhmmss>-<token>``: at most 63 characters, valid on every cloud."""
    return f"{spec.name}-{created_at:%Y%m%d-%H%M%S}-{token[:4]}"


def processes_per_node(spec: JobSpec, accelerator_count: int | None = None) -> int:
    if spec.distribution.type != "torchrun":
        return 1
    wanted = spec.distribution.processes_per_node
    if wanted != "auto":
        return int(wanted)
    count = accelerator_count if accelerator_count is not None else (spec.resources.accelerator.count if spec.resources.accelerator else 0)
    return max(1, count)


def choose_offer(spec: JobSpec, cloud: str, catalog: "Catalog", region: str | None = None) -> "Offer":
    """The cheapest offer on ``cloud`` satisfying the spec's resources (an exact instance type wins)."""
    from cloudtrain.catalog import normalize_accelerator

    res = spec.resources
    accelerator = normalize_accelerator(res.accelerator.name) if res.accelerator else None
    query = dict(
        region=region,
        accelerator=accelerator,
        accelerator_count=res.accelerator.count if res.accelerator else None,
        min_vcpus=res.cpus,
        min_memory_gib=res.memory_gib,
        instance_type=getattr(res.instance_type, cloud),
    )
    return catalog.cheapest(cloud, **query)


def _cloud_region(cloud: str, settings: dict[str, Any]) -> str | None:
    key = {"sagemaker": "region", "azureml": "region", "vertex": "location"}.get(cloud)
    return settings.get(key) if key else None


def make_plan(
    spec: JobSpec,
    cloud: str,
    *,
    catalog: "Catalog | None" = None,
    region: str | None = None,
    spot: bool | None = None,
    created_at: datetime | None = None,
    token: str | None = None,
    runs_dir: Path | None = None,
) -> Plan:
    """Resolve ``spec`` for one backend. ``region`` and ``spot`` override the spec when given."""
    if cloud not in BACKENDS:
        raise UsageError(f"unknown cloud {cloud!r}", f"choose one of: {', '.join(BACKENDS)}")
    if created_at is None or token is None:
        created_at, token = new_submission(created_at)
    use_spot = spec.spot.enabled if spot is None else spot
    name = job_name(spec, created_at, token)
    if cloud == "local":
        return Plan(spec=spec, cloud=cloud, job_name=name, submission_token=token, created_at=created_at,
                    nodes=spec.resources.nodes, processes_per_node=processes_per_node(spec), spot=False,
                    runs_dir=runs_dir)
    settings = spec.cloud_settings(cloud).model_dump()
    if catalog is None:
        from cloudtrain.catalog import load_catalog

        catalog = load_catalog()
    offer = choose_offer(spec, cloud, catalog, region or _cloud_region(cloud, settings))
    from cloudtrain.cost import estimate_offer

    plan = Plan(
        spec=spec, cloud=cloud, job_name=name, submission_token=token, created_at=created_at,
        nodes=spec.resources.nodes, processes_per_node=processes_per_node(spec, offer.accelerator_count),
        region=offer.region, offer=offer, spot=bool(use_spot), settings=settings,
    )
    return _with_estimate(plan, estimate_offer(spec, offer, spot=bool(use_spot)))


def _with_estimate(plan: Plan, estimate: "CostEstimate") -> Plan:
    from dataclasses import replace

    return replace(plan, estimate=estimate)


def cheapest_cloud(spec: JobSpec, catalog: "Catalog", region: str | None = None, spot: bool | None = None) -> str:
    """The cloud whose cheapest matching offer has the lowest upper-bound (or hourly) cost."""
    from cloudtrain.cost import estimate_spec

    estimates = estimate_spec(spec, catalog, region=region, spot=spot).offers
    if not estimates:
        raise CatalogError("no cloud has an offer that satisfies this spec's resources", "loosen resources, or see `cloudtrain catalog`")
    return estimates[0].cloud
