"""``cloudtrain catalog``: every machine each cloud offers for training, with its price where one is sourced."""

from __future__ import annotations

import click

from cloudtrain.cli.common import BackendChoice, console, err_console, json_option, print_json, runner


@click.command("catalog")
@click.option("--cloud", type=BackendChoice(priced_only=True), default=None)
@click.option("--region", default=None)
@click.option("--gpu", default=None, metavar="NAME", help="Only offers with this accelerator (T4, A100, H100...).")
@click.option("--cpu-only", is_flag=True, help="Only offers without accelerators.")
@click.option("--priced", "priced_only", is_flag=True, help="Only offers with a sourced price (or your own).")
@json_option
def command(cloud: str | None, region: str | None, gpu: str | None, cpu_only: bool, priced_only: bool, as_json: bool) -> None:
    """List the machines each cloud offers for training, with their facts and prices where sourced
    (priced first, cheapest first, within each cloud and region)."""
    from cloudtrain.catalog import normalize_accelerator
    catalog = runner().catalog
    offers = catalog.filter(cloud=cloud, region=region, gpu=False if cpu_only else None)
    if gpu:
        name = normalize_accelerator(gpu)
        offers = [o for o in offers if o.accelerator == name]
    if priced_only:
        offers = [o for o in offers if o.priced]
    if as_json:
        print_json([o.to_dict() for o in offers])
        return
    from rich.table import Table

    from rich import box

    table = Table(header_style="bold", box=box.SIMPLE_HEAD)
    for column in ("cloud", "region", "instance", "accelerator", "acc. GiB", "vCPUs", "GiB", "$/h", "spot $/h", "as of"):
        table.add_column(column, justify="right" if column in ("acc. GiB", "vCPUs", "GiB", "$/h", "spot $/h") else "left",
                         no_wrap=column == "instance")
    for o in offers:
        table.add_row(o.cloud, o.region, o.instance_type, f"{o.accelerator} x{o.accelerator_count}" if o.accelerator else "-",
                      f"{o.accelerator_memory_gib:g}" if o.accelerator_memory_gib else "-", str(o.vcpus), f"{o.memory_gib:g}",
                      f"{o.usd_per_hour:,.3f}" if o.usd_per_hour is not None else "-",
                      f"{o.spot_usd_per_hour:,.3f}" if o.spot_usd_per_hour is not None else "-",
                      o.price_origin if o.price_origin != "catalog" else str(o.price_as_of))
    console().print(table)
    for warning in catalog.warnings:
        err_console().print(f"warning: {warning}", markup=False)
    if not offers:
        err_console().print("no offer matches; drop a filter to see more")
