"""``cloudtrain prices refresh``: rebuild the cached catalog from the clouds' public pricing APIs."""

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
