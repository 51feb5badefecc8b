"""The throwaway MariaDB server of `dataloader_mysql.testing`."""

from __future__ import annotations

import pymysql
import pytest

from dataloader_mysql.testing import MariaDBServer


def test_server_answers_with_real_auth_utf8mb4_and_local_infile(
    mariadb_server: MariaDBServer, mariadb_database: str
) -> None:
    connection = mariadb_server.connect(mariadb_database)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT DATABASE(), @@local_infile, @@character_set_server, @@log_bin")
        assert cursor.fetchone() == (mariadb_database, 1, "utf8mb4", 0)
    finally:
        connection.close()
    settings = mariadb_server.connection_settings(mariadb_database)
    assert settings["host"] == "127.0.0.1" and settings["database"] == mariadb_database
    assert mariadb_server.url(mariadb_database).startswith("mysql+pymysql://")
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(
            host="127.0.0.1", port=mariadb_server.port, user=settings["user"], password="wrong"
        )


def test_each_test_gets_a_new_database(
    mariadb_server: MariaDBServer, mariadb_database: str
) -> None:
    assert mariadb_server.create_database() != mariadb_database
