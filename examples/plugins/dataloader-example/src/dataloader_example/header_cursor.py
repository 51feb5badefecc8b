"""A paginator of the `rest` source defined outside it: the next page's token comes in a
response header (`X-Next-Cursor: MTA=`) and goes back as a query parameter (`?after=MTA=`).

Registered by `plugin.register_paginators`; a recipe uses it as
`paginator: {type: header_cursor, header: X-Next-Cursor, param: after}`.
"""

from __future__ import annotations

from dataloader import ConnectorError
from dataloader_rest import PageRequest, PageResponse, Paginator, PaginatorOptions


class HeaderCursorOptions(PaginatorOptions):
    """The header holding the next page's token, and the parameter it is sent back in.

    The shared stop conditions (`max_pages`, `total_path`, `stop_on_empty_page`) come from
    `PaginatorOptions`.
    """

    header: str = "X-Next-Cursor"
    param: str = "cursor"


class HeaderCursorPaginator(Paginator):
    """Follows the token of the `header` response header; no header, or an empty one, ends
    the listing."""

    name = "header_cursor"
    options_model = HeaderCursorOptions
    options: HeaderCursorOptions

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        token = response.headers.get(self.options.header, "").strip()
        if not token:
            return None
        if token == request.params.get(self.options.param):
            raise ConnectorError(
                f"the {self.options.header} header repeats the token of the page it "
                "answered: the listing would never end",
                key="source.resource.paginator.header",
            )
        return request.with_params({self.options.param: token})
