"""`dataloader demo-api`: the local demo API (`dataloader_rest.testing`) served until Ctrl-C,
so that the REST examples (`examples/recipes/*` with `type: rest`) can be tried by hand."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

DEFAULT_PORT = 8008  # the examples' default `DEMO_API_URL`


@click.command("demo-api")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--records",
    type=click.IntRange(0, 1_000_000),
    default=250,
    show_default=True,
    help="How many records the /…/items listings hold.",
)
def demo_api(port: int, records: int) -> None:
    """Serve the REST source's demo API on 127.0.0.1 until Ctrl-C."""
    try:
        from dataloader_rest.testing import DemoApi, create_app, serve_app
    except ImportError as exc:
        raise click.ClickException(
            f"the demo API needs the `testing` extra ({exc.name} is missing): "
            "pip install 'dataloader-rest[testing]'"
        ) from None
    api = DemoApi(records)
    # The server runs in a thread, where uvicorn leaves SIGINT alone: Ctrl-C reaches this
    # thread as KeyboardInterrupt, also when the shell that started it ignores SIGINT (a
    # background job); SIGTERM as well.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with serve_app(create_app(lambda: api), port) as base_url:
            api.base_url = base_url
            click.echo(_banner(api), nl=False)
            threading.Event().wait()
    except RuntimeError as exc:
        raise click.ClickException(f"the demo API on 127.0.0.1:{port}: {exc}") from None
    except KeyboardInterrupt:
        click.echo("stopping the demo API")


def _banner(api: Any) -> str:
    """What to paste into another terminal to run the examples against `api`."""
    return (
        f"demo API at {api.base_url} (Ctrl-C stops it)\n"
        "In another terminal:\n"
        f"  export DEMO_API_URL={api.base_url}\n"
        f"  export STRIPE_API_KEY={api.stripe_key}  # the demo's\n"
        "  export GITHUB_TOKEN=demo  # any value: the demo does not check it\n"
        "  dataloader run examples/recipes/github_issues_to_duckdb.yaml\n"
        "Listings: /offset/items /page/items /cursor/items /nexturl/items /link/items\n"
        "  /header/items /jsonl/items /csv/items /github/orgs/acme/repos\n"
        "  /stripe/v1/customers; auth: /auth/{apikey,bearer,basic,oauth}/items\n"
    )
