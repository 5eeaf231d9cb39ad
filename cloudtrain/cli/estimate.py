"""``cloudtrain estimate SPEC``: per-hour and upper-bound cost on every cloud, before launching."""

from __future__ import annotations

from datetime import date

import click

from cloudtrain.cli.common import BackendChoice, console, err_console, json_option, load, print_json, runner, spec_argument


@click.command("estimate")
@spec_argument
@click.option("--cloud", type=BackendChoice(), default=None, help="Only this backend.")
@click.option("--region", default=None, help="Only this region (default: the configured one, else the cheapest).")
@click.option("--spot/--no-spot", default=None, help="Price spot capacity (default: the spec's spot.enabled).")
@json_option
def command(spec_path: str, overrides: tuple[str, ...], cloud: str | None, region: str | None, spot: bool | None, as_json: bool) -> None:
    """Show what SPEC costs per hour and at most (nodes x $/h x max_runtime) on each cloud, cheapest first."""
    from cloudtrain.api import Job
    from cloudtrain.cost import STALE_AFTER_DAYS, usd
    from cloudtrain.errors import CatalogError

    job = Job.from_loaded(load(spec_path, overrides, check_files=False), runner=runner())
    spec = job.spec
    result = job.estimate(cloud, region=region, spot=spot)
    if not result.offers and not result.unpriced:
        reasons = "; ".join(f"{c}: {why}" for c, why in result.unavailable.items())
        raise CatalogError(f"no cloud has an offer for this job's resources ({reasons})", "see `cloudtrain catalog` for what exists")
    bounds = []
    if spec.sweep is not None:  # a sweep's bound: its trials' bounds summed
        from cloudtrain.sweeps.bounds import sweep_bound

        bounds = [sweep_bound(spec.sweep, offer) for offer in result.offers]
    if as_json:
        print_json({**result.to_dict(), **({"sweep": [b.to_dict() for b in bounds]} if bounds else {})})
        return
    today = date.today()
    from rich.table import Table

    spot_wanted = spec.spot.enabled if spot is None else spot
    runtime = f"at most {_duration(result.max_runtime_hours)}" if result.max_runtime_hours is not None else "no max_runtime"
    from rich import box

    table = Table(title=f"{spec.name}: {result.nodes} node(s), {runtime}", title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD)
    any_spot = any(o.spot for o in result.offers)
    columns = ["cloud", "region", "instance", "GPUs", "$/h node", "$/h all", "max total"]
    columns += ["on-demand max"] if any_spot else []
    for column in [*columns, "as of"]:
        right = "$" in column or "max" in column
        table.add_column(column, justify="right" if right else "left", no_wrap=column == "instance")
    for index, item in enumerate(result.offers):
        accelerator = f"{item.accelerator} x{item.accelerator_count}" if item.accelerator else "-"
        cloud = f"[bold green]{item.cloud} *[/]" if index == 0 and item.priced else item.cloud
        if not item.priced:
            table.add_row(cloud, item.region, item.instance_type, accelerator, "[yellow]no sourced price[/]",
                          *["-"] * (len(columns) - 4))
            continue
        per_node = item.spot_usd_per_hour_per_node if item.spot else item.usd_per_hour_per_node
        kind = " spot" if item.spot else ""
        exact = item.exact_max_total_usd
        total = "-" if item.max_total_usd is None or exact is None else usd(exact if exact < 0.01 else item.max_total_usd)
        row = [cloud, item.region, item.instance_type, accelerator, f"{per_node:,.2f}{kind}", f"{item.effective_usd_per_hour:,.2f}", total]
        if any_spot:
            row.append("-" if item.on_demand_max_total_usd is None or not item.spot else f"${item.on_demand_max_total_usd:,.2f}")
        stale = item.age_days(today) > STALE_AFTER_DAYS and item.price_origin != "your price"
        as_of = "your price" if item.price_origin == "your price" else str(item.price_as_of)
        table.add_row(*row, f"[yellow]{as_of}[/]" if stale else as_of)
    for name in result.unpriced:
        table.add_row(name, "-", "-", "-", "[yellow]no sourced price[/]", *["-"] * (len(columns) - 4))
    table.caption = "* cheapest"
    table.caption_justify = "left"
    out = console()
    out.print(table)
    notes = err_console()
    if result.max_runtime_hours is None:
        notes.print("note: the spec has no max_runtime, so there is no upper bound: only hourly figures are shown "
                    "(set max_runtime, e.g. max_runtime: 2h, to get a total)")
    for item in result.offers:
        if not item.priced:
            notes.print(f"{item.cloud}: {item.instance_type} in {item.region} has no sourced price in the catalog; it can still be "
                        "submitted (give your own price with `cloudtrain prices import FILE`)", soft_wrap=True, markup=False)
    if spot_wanted and any(not o.spot and o.priced for o in result.offers):
        missing = ", ".join(o.cloud for o in result.offers if not o.spot and o.priced)
        notes.print(f"note: no published spot price on {missing}; on-demand prices are used there (the bound)")
    for item in result.stale(today):
        notes.print(f"[yellow]warning:[/] the {item.cloud} price of {item.instance_type} is {item.age_days(today)} days old "
                    f"(as of {item.price_as_of}); run `cloudtrain prices refresh --cloud {item.cloud}`")
    for name, why in result.unavailable.items():
        notes.print(f"not available on {name}: {why}", soft_wrap=True, markup=False)
    for name, why in result.unpriced.items():
        notes.print(f"{name}: {why}", soft_wrap=True, markup=False)
    limit = spec.sweep.budget.max_usd if spec.sweep is not None and spec.sweep.budget is not None else None
    for offer, bound in zip(result.offers, bounds):
        if bound.per_trial_usd is None:
            why = "no sourced price" if not offer.priced else "the spec has no max_runtime"  # as sweep's refusal says
            verdict = f"; sweep.budget {usd(limit)} cannot be proven there (sweep refuses it, exit 4)" if limit is not None else ""
            line = f"sweep on {bound.cloud} {bound.instance_type}: no upper bound ({bound.trials} trials, {why}){verdict}"
        else:
            total = bound.per_trial_usd * bound.trials
            per_trial = f"${bound.per_trial_usd:,.4f}".rstrip("0").rstrip(".")
            verdict = "" if limit is None else (f"; within sweep.budget {usd(limit)}" if total <= limit + 1e-12
                                                else f"; over sweep.budget {usd(limit)} (sweep refuses it, exit 4)")
            line = f"sweep on {bound.cloud} {bound.instance_type}: at most {usd(total)} ({bound.trials} trials x {per_trial}){verdict}"
        notes.print(line, markup=False, soft_wrap=True)
    if spec.budget and result.cheapest and result.cheapest.max_total_usd is not None and result.cheapest.priced:
        verdict = "within" if result.cheapest.max_total_usd <= spec.budget.max_usd else "[red]over[/]"
        notes.print(f"budget: {usd(spec.budget.max_usd)}; the cheapest offer is {verdict} it")


def _duration(hours: float) -> str:
    """``0.1667`` -> ``10 min``, ``1.5`` -> ``1 h 30 min``, ``2`` -> ``2 h`` (to the second below a minute)."""
    seconds = round(hours * 3600)
    if seconds < 60:
        return f"{seconds} s"
    whole, minutes = divmod(round(seconds / 60), 60)
    return " ".join(part for part in (f"{whole} h" if whole else "", f"{minutes} min" if minutes else "") if part)
