"""`dataloader init`: scaffold a working example project."""

from __future__ import annotations

from pathlib import Path

import click

from dataloader.errors import PluginError

SAMPLE_CSV = '''id,name,email,country,signup_date,lifetime_value,updated_at
1,Ada Lovelace,ada@example.com,GB,2024-01-05,1250.50,2024-06-01T10:00:00
2,Grace Hopper,grace@example.com,US,2024-01-07,980.00,2024-06-01T11:30:00
3,"Hopper, Grace ""Amazing""",amazing@example.com,US,2024-02-11,15.25,2024-06-02T09:15:00
4,Alan Turing,alan@example.com,GB,2024-03-01,,2024-06-03T08:00:00
5,Søren Kierkegaard,soren@example.com,DK,2024-03-14,42.00,2024-06-03T12:45:00
'''

BASE_RECIPE = """# Shared settings every recipe in this project extends. Abstract: `dataloader run .`
# skips it; it is only ever run through a recipe that extends it.
abstract: true
source:
  type: filestore
  format: csv
destination:
  type: duckdb
  database: "{{ env_var('DATALOADER_DUCKDB', 'warehouse.duckdb') }}"
  write_mode: append
transform:
  steps:
    - type: add_column
      name: _loaded_at
      from: load_time
runtime:
  batch_size: 50000
"""

CUSTOMERS_RECIPE = """# Load the sample customers CSV into DuckDB, merging on id.
extends: base.yaml
name: customers
source:
  path: data/customers.csv
  incremental:
    strategy: modified_time
transform:
  steps:
    - type: cast
      columns:
        lifetime_value: decimal(12,2)
        updated_at: {type: datetime, timezone: UTC}
    - type: add_column
      name: _recipe
      value: "{{ recipe.name }}"
destination:
  table: customers
  write_mode: merge
  merge_keys: [id]
"""


# The connectors the sample project runs with.
NEEDS = ("filestore", "duckdb")


def check_installed() -> None:
    """Fail before writing anything when a connector the sample project needs is missing,
    naming the distribution that provides it."""
    from dataloader.registry import KNOWN_PROVIDERS, get_registry

    registry = get_registry()
    missing = [name for name in NEEDS if name not in registry.names("connector")]
    if not missing:
        return
    reasons = "; ".join(
        f"{name!r}: {registry.why_missing('connector', name) or 'not installed'}"
        for name in missing
    )
    raise PluginError(
        "the sample project reads a CSV file with the `filestore` connector into DuckDB with "
        f"the `duckdb` connector, and this installation lacks {reasons}",
        expected="pip install "
        + " ".join(KNOWN_PROVIDERS[("connector", name)] for name in missing)
        + " (or, if installed, enable their plugins)",
    )


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: str, force: bool) -> None:
    """Create a sample project: a CSV file and two recipes (an abstract base and a child) that
    load it into DuckDB. Needs the dataloader-filestore and dataloader-duckdb plugins."""
    check_installed()
    root = Path(directory)
    files = {
        root / "data" / "customers.csv": SAMPLE_CSV,
        root / "base.yaml": BASE_RECIPE,
        root / "customers.yaml": CUSTOMERS_RECIPE,
    }
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        raise click.ClickException(f"not overwriting {', '.join(existing)} (use --force)")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"created {path}")
    cd = "" if root.resolve() == Path.cwd().resolve() else f"cd {root} && "
    click.echo(f"\nnext: {cd}dataloader run .")
