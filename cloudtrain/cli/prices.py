"""``cloudtrain prices refresh``: rebuild the cached catalog from the clouds' public pricing APIs;
``cloudtrain prices import FILE``: your own (negotiated, discounted) prices, shown as "your price"."""

from __future__ import annotations

import click

from cloudtrain.cli.common import BackendChoice, console


@click.group("prices")
def command() -> None:
    """Manage the price catalog."""


@command.command("refresh")
@click.option("--cloud", type=BackendChoice(priced_only=True), multiple=True,
              help="Only this cloud (repeatable); all three by default.")
@click.option("--region", "regions", multiple=True, help="Only these regions (repeatable).")
def refresh_command(cloud: tuple[str, ...], regions: tuple[str, ...]) -> None:
    """Fetch current prices and write them to the user's catalog cache ($CLOUDTRAIN_HOME/catalog).

    The bundled catalog stays the fallback: a cloud whose refresh fails keeps its previous prices."""
    from rich.markup import escape

    from cloudtrain.catalog.refresh import refresh
    from cloudtrain.errors import CatalogError
    from cloudtrain.paths import catalog_cache_dir

    out = console()
    failures = []
    for name in cloud or BackendChoice(priced_only=True).choices():
        try:
            summary = refresh(name, catalog_cache_dir(), regions=tuple(regions) or None)
        except CatalogError as error:
            failures.append(error)
            out.print(f"[red]{name}[/]: {escape(error.message)}", soft_wrap=True)
            if error.hint:
                out.print(f"  hint: {error.hint}", soft_wrap=True, markup=False)
            continue
        per_region = ", ".join(f"{r}: {n}" for r, n in summary.rows_per_region.items())
        out.print(f"[green]{name}[/]: {summary.total} offers ({per_region}) -> {summary.path}", soft_wrap=True)
    if failures:
        raise SystemExit(3)


@command.command("import")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
def import_command(path: str) -> None:
    """Use your own prices: FILE is a CSV with the catalog's columns (cloud, region, instance_type,
    accelerator, accelerator_count, accelerator_memory_gib, vcpus, memory_gib, usd_per_hour,
    spot_usd_per_hour, price_as_of, source). They win over the catalog's, row by row, and
    `estimate` shows them as "your price". Importing again replaces the previous file."""
    from cloudtrain.catalog import clear_cache
    from cloudtrain.catalog.loading import USER_PRICES
    from cloudtrain.catalog.offers import OfferFormatError, read_offers, write_offers
    from cloudtrain.errors import UsageError
    from cloudtrain.paths import catalog_cache_dir

    try:
        offers = read_offers(open(path, encoding="utf-8").read())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}", "give a UTF-8 CSV file") from None
    except OfferFormatError as error:
        raise UsageError(f"{path}: {error}", "the header is the catalog's: `cloudtrain catalog --json` shows the fields") from None
    if not offers:
        raise UsageError(f"{path} has no price rows", "add one row per (cloud, region, instance type)")
    target = catalog_cache_dir() / USER_PRICES
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(write_offers(offers), encoding="utf-8")
    temporary.replace(target)
    clear_cache()
    console().print(f"imported {len(offers)} price(s) of yours -> {target}", soft_wrap=True, markup=False)
