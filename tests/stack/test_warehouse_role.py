"""The stack's PostgreSQL: services get a password-protected role that owns the warehouse
database and nothing more; the superuser is the devstack's alone."""

from __future__ import annotations

import psycopg
import pytest

from railpulse_devstack import postgres
from railpulse_devstack.config import load_config

pytestmark = pytest.mark.stack


def test_the_service_role_is_not_superuser(stack: dict[str, str]) -> None:
    with psycopg.connect(stack["RAILPULSE_PG_DSN"]) as conn:
        role = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        superusers = conn.execute("SELECT rolname FROM pg_roles WHERE rolsuper").fetchall()
    assert role == ("railpulse", False, False, False, False)
    assert superusers == [(postgres.ADMIN,)]


def test_a_connection_without_the_password_is_refused(stack: dict[str, str]) -> None:
    info = psycopg.conninfo.conninfo_to_dict(stack["RAILPULSE_PG_DSN"])
    assert info.get("password")
    attempts = {
        "no password": {**info, "password": ""},
        "wrong password": {**info, "password": "railpulse"},
        "another database": {**info, "dbname": "postgres"},
        "the superuser over TCP": {**info, "user": postgres.ADMIN, "dbname": "postgres"},
    }
    for what, attempt in attempts.items():
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(psycopg.conninfo.make_conninfo(**attempt), connect_timeout=5)
            pytest.fail(f"{what} was let in")


def test_the_recreated_database_belongs_to_the_service_role(stack: dict[str, str]) -> None:
    """`up` recreates the warehouse after a fresh moto; the services must own the new one."""
    postgres.recreate_database(load_config())
    with psycopg.connect(stack["RAILPULSE_PG_DSN"], autocommit=True) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        conn.execute("CREATE TABLE probe (n int)")
        conn.execute("INSERT INTO probe VALUES (1)")
        assert conn.execute("SELECT count(*) FROM probe").fetchone() == (1,)
        conn.execute("DROP TABLE probe")
    assert owner == ("railpulse",)
