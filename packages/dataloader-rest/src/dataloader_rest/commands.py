"""`dataloader demo-api`: the local demo API (`dataloader_rest.testing`) served until Ctrl-C,
so that the REST examples (`examples/recipes/*` with `type: rest`) can be tried by hand."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import click

DEFAULT_PORT = 8008  # the examples' default `DEMO_API_URL`
START_SECONDS = 10.0


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
        import uvicorn

        from dataloader_rest.testing import DemoApi, create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the demo API needs the `testing` extra ({exc.name} is missing): "
            "pip install 'dataloader-rest[testing]'"
        ) from None
    api = DemoApi(records)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(lambda: api),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    # In a thread, uvicorn leaves SIGINT alone: Ctrl-C reaches this thread as KeyboardInterrupt,
    # also when the shell that started it ignores SIGINT (a background job); SIGTERM as well.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
    thread.start()
    _wait_started(server, thread, port)
    bound = server.servers[0].sockets[0].getsockname()[1]
    api.base_url = f"http://127.0.0.1:{bound}"
    try:
        click.echo(_banner(api), nl=False)
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        click.echo("stopping the demo API")
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)


def _wait_started(server: Any, thread: threading.Thread, port: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive():
            raise click.ClickException(f"the demo API could not listen on 127.0.0.1:{port}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise click.ClickException(f"the demo API did not start within {START_SECONDS:g} s")
        thread.join(0.01)


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
