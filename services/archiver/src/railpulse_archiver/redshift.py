"""Redshift Serverless with IAM authentication, behind the part of psycopg's connection that the
loader and the warehouse queries use.

`redshift_connector` signs in with the task role: it calls `redshift-serverless:GetCredentials`
for the workgroup and database (temporary database credentials for the role's own database user,
`IAMR:<role name>`), so no password is stored anywhere. The wrapper translates the connector's
errors into psycopg's classes (`OperationalError` for a warehouse that cannot be reached,
`DatabaseError` for a statement it refused), so the loader's rules (stop on the first, set the
object aside on the second) are the same on both warehouses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["RedshiftConnection", "RedshiftTarget", "connect_redshift"]


@dataclass(frozen=True)
class RedshiftTarget:
    host: str
    port: int
    database: str
    workgroup: str
    region: str


@dataclass(frozen=True)
class _Column:
    name: str


def _translate(exc: Exception) -> psycopg.Error:
    from redshift_connector.error import IntegrityError, InterfaceError, OperationalError

    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, InterfaceError | OperationalError):
        return psycopg.OperationalError(message)
    if isinstance(exc, IntegrityError):
        return psycopg.errors.UniqueViolation(message)
    return psycopg.DatabaseError(message)


def _text(statement: str | bytes) -> str:
    return statement.decode() if isinstance(statement, bytes) else statement


class _Cursor:
    def __init__(self, raw: Any) -> None:
        self._raw = raw

    @property
    def description(self) -> list[_Column] | None:
        described = self._raw.description
        return None if described is None else [_Column(str(c[0])) for c in described]

    def execute(self, statement: str | bytes, params: Sequence[Any] | None = None) -> _Cursor:
        try:
            self._raw.execute(_text(statement), params)
        except Exception as exc:
            raise _translate(exc) from exc
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._raw.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self._raw.fetchall()]
        except Exception as exc:  # the connector raises when a statement returned no rows
            if self._raw.description is None:
                return []
            raise _translate(exc) from exc

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RedshiftConnection:
    """autocommit outside `transaction()`, one transaction inside it, as the loader expects."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._raw.autocommit = True

    def cursor(self) -> _Cursor:
        return _Cursor(self._raw.cursor())

    def execute(self, statement: str | bytes, params: Sequence[Any] | None = None) -> _Cursor:
        return self.cursor().execute(statement, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._raw.autocommit = False
        try:
            yield
            self._raw.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self._raw.rollback()
            raise
        finally:
            self._raw.autocommit = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()

    def __enter__(self) -> RedshiftConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_redshift(target: RedshiftTarget) -> RedshiftConnection:
    """Sign in with the caller's AWS credentials (the task role in AWS) through IAM."""
    import redshift_connector

    try:
        raw = redshift_connector.connect(
            iam=True,
            is_serverless=True,
            serverless_work_group=target.workgroup,
            database=target.database,
            host=target.host,
            port=target.port,
            region=target.region,
            ssl=True,
            sslmode="verify-full",
        )
    except Exception as exc:
        raise _translate(exc) from exc
    return RedshiftConnection(raw)
