"""Entry-point module: registers the `rest` source, the built-in paginators and the
`dataloader demo-api` command.

Only `PluginRef`s: listing plugins or validating a recipe imports `dataloader_rest.config`
(pydantic only), never httpx; the connector and paginators are imported when a run uses them.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_connectors() -> list[Any]:
    return [
        PluginRef(
            "rest",
            "dataloader_rest.connector:RestConnector",
            config_model="dataloader_rest.config:RestConfig",
            capabilities={"read": True, "incremental": True, "resumable": True},
        )
    ]


_PAGINATORS = "dataloader_rest.paginators"


@hookimpl
def register_paginators() -> list[Any]:
    return [
        PluginRef(name, f"{_PAGINATORS}:{cls}Paginator", config_model=f"{_PAGINATORS}:{options}")
        for name, cls, options in (
            ("offset", "Offset", "OffsetOptions"),
            ("page_number", "PageNumber", "PageNumberOptions"),
            ("cursor", "Cursor", "CursorOptions"),
            ("starting_after", "StartingAfter", "StartingAfterOptions"),
            ("next_url", "NextUrl", "NextUrlOptions"),
            ("link_header", "LinkHeader", "LinkHeaderOptions"),
            ("single_page", "SinglePage", "PaginatorOptions"),
            ("auto", "Auto", "AutoOptions"),
        )
    ]


@hookimpl
def register_commands(cli: Any) -> None:
    from dataloader_rest.commands import demo_api

    cli.add_command(demo_api)
