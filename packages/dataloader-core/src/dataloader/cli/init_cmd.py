"""`dataloader init`: scaffold a working example project."""

from __future__ import annotations

from pathlib import Path

import click

SAMPLE_CSV = '''id,name,email,country,signup_date,lifetime_value,updated_at
1,Ada Lovelace,ada@example.com,GB,2024-01-05,1250.50,2024-06-01T10:00:00
2,Grace Hopper,grace@example.com,US,2024-01-07,980.00,2024-06-01T11:30:00
3,"Hopper, Grace ""Amazing""",amazing@example.com,US,2024-02-11,15.25,2024-06-02T09:15:00
4,Alan Turing,alan@example.com,GB,2024-03-01,,2024-06-03T08:00:00
5,Søren Kierkegaard,soren@example.com,DK,2024-03-14,42.00,2024-06-03T12:45:00
'''

BASE_RECIPE = """# Shared settings every recipe in this project extends.
name: base
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


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: str, force: bool) -> None:
    """Create a sample project: a CSV file and two recipes (a base and a child) that load it into DuckDB."""
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
    click.echo(f"\nnext: cd {root} && dataloader run customers.yaml")
