"""Options of the `sql` connector: a SQLAlchemy URL, driver arguments, a table or query."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, SecretStr, field_validator

from dataloader.connectors import TableOrQueryConfig


class SqlConfig(TableOrQueryConfig):
    """The `sql` connector: any database SQLAlchemy has a dialect for.

    :param url: a SQLAlchemy URL (`sqlite:///path.db`, `mysql+pymysql://user:pw@host/db`, …);
        a secret as a whole, as it carries the password.
    :param connect_args: extra keyword arguments for the driver's `connect()`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr
    connect_args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _parses(cls, url: SecretStr) -> SecretStr:
        from sqlalchemy.engine import make_url

        try:
            make_url(url.get_secret_value())
        except Exception:  # ArgumentError, or ValueError on the port
            # Every parse error quotes part of the URL (a raw password's tail): never repeat it.
            raise ValueError(
                "not a SQLAlchemy URL; expected `dialect+driver://user:password@host/database` "
                "(e.g. `sqlite:///data.db`), with `:`, `/`, `@`, `#`, `%` and `?` in the user "
                "or password percent-encoded (`@` as `%40`)"
            ) from None
        return url

    def describe(self) -> str:
        """The URL without its password, for messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.url.get_secret_value()).render_as_string(hide_password=True)
