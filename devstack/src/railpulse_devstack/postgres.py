"""PostgreSQL 15, the local warehouse stand-in (Redshift speaks its protocol).

`initdb` on first start under `<state>/pg/data` (superuser `railpulse`, trust auth on loopback),
then `pg_ctl start` on 127.0.0.1:<port>, and a database `railpulse`. PostgreSQL refuses to run
as root: when we are root, every server command runs as the `postgres` system user (created if
missing) through `runuser`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import structlog

from railpulse_devstack.config import StackConfig
from railpulse_devstack.errors import ProcessStartError, StackError

__all__ = ["DATABASE", "USER", "dsn", "pid", "recreate_database", "start", "stop"]

logger = structlog.get_logger()

USER = "railpulse"
DATABASE = "railpulse"
_SYSTEM_USER = "postgres"


def dsn(config: StackConfig) -> str:
    return f"postgresql://{USER}@{config.host}:{config.pg_port}/{DATABASE}"


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise StackError(f"{name} not found: install PostgreSQL 15 (make setup does)")


@functools.lru_cache(maxsize=8)
def _server_user_reaches(directory: str) -> bool:
    _ensure_system_user()
    probe = subprocess.run(
        ["runuser", "-u", _SYSTEM_USER, "--", "test", "-x", directory], check=False
    )
    return probe.returncode == 0


def _base(config: StackConfig) -> Path:
    """`<state>/pg`, unless the server user cannot reach the state folder (a clone under a
    private home directory, say): then a folder of its own under /var/tmp, named for the state."""
    preferred = config.state_dir / "pg"
    if os.geteuid() != 0 or _server_user_reaches(str(config.state_dir)):
        return preferred
    digest = hashlib.sha256(str(config.state_dir).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"railpulse-pg-{digest}"


def _paths(config: StackConfig) -> tuple[Path, Path, Path]:
    base = _base(config)
    return base / "data", base / "run", base / "postgres.log"


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", _SYSTEM_USER, "--", *argv]


def _ensure_system_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                _SYSTEM_USER,
            ],
            check=True,
        )
        entry = pwd.getpwnam(_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _prepare(config: StackConfig) -> None:
    data, run, log = _paths(config)
    for d in (data.parent, run, config.logs_dir):
        d.mkdir(parents=True, exist_ok=True)
    log.touch(exist_ok=True)
    link = config.logs_dir / "postgres.log"
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        link.symlink_to(log)
    if os.geteuid() == 0:
        uid, gid = _ensure_system_user()
        for path in (data.parent, run, log):
            os.chown(path, uid, gid)
        if data.exists():
            os.chown(data, uid, gid)
    data.parent.chmod(0o700)


def pid(config: StackConfig) -> int | None:
    data, _, _ = _paths(config)
    try:
        first = (data / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    if not first.isdigit():
        return None
    value = int(first)
    try:
        os.kill(value, 0)
    except OSError:
        return None
    return value


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def start(config: StackConfig) -> None:
    """initdb if needed, start the server, create the database; idempotent."""
    data, run, log = _paths(config)
    _prepare(config)
    if not (data / "PG_VERSION").exists():
        logger.info("postgres.initdb", data=str(data))
        out = _run(
            _as_server_user(
                [
                    _bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
        )
        if out.returncode != 0:
            raise ProcessStartError(f"initdb failed: {out.stderr.strip()[-2000:]}")
    if pid(config) is None:
        options = (
            f"-p {config.pg_port} -c listen_addresses={config.host} "
            f"-c unix_socket_directories={run}"
        )
        out = _run(
            _as_server_user(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "45",
                    "start",
                ]
            )
        )
        if out.returncode != 0:
            raise ProcessStartError(
                f"PostgreSQL did not start ({out.stdout.strip()} {out.stderr.strip()}); see {log}"
            )
    psql = _psql(config)
    exists = _run(
        [*psql, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"]
    )
    if exists.returncode != 0:
        raise ProcessStartError(f"PostgreSQL is not answering: {exists.stderr.strip()}; see {log}")
    if exists.stdout.strip() != "1":
        created = _run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"])
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise ProcessStartError(f"CREATE DATABASE failed: {created.stderr.strip()}")


def _psql(config: StackConfig) -> list[str]:
    return [_bin("psql"), "-h", config.host, "-p", str(config.pg_port), "-U", USER]


def recreate_database(config: StackConfig) -> None:
    """Drop the database (ending its sessions) and create it empty."""
    for sql in (f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", f"CREATE DATABASE {DATABASE}"):
        out = _run([*_psql(config), "-d", "postgres", "-c", sql])
        if out.returncode != 0:
            raise ProcessStartError(f"{sql} failed: {out.stderr.strip()}")
    logger.info("postgres.database_recreated", database=DATABASE)


def stop(config: StackConfig) -> bool:
    """Stop the server if it runs; True if it was running."""
    data, _, _ = _paths(config)
    if pid(config) is None:
        return False
    out = _run(
        _as_server_user([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"])
    )
    if out.returncode != 0:
        leftover = pid(config)
        if leftover is not None:
            os.kill(leftover, 9)
    return True
