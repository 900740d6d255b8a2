"""PostgreSQL 15, the local warehouse stand-in (Redshift speaks its protocol).

`initdb` on first start under `<state>/pg/data`, then `pg_ctl start` on 127.0.0.1:<port>.
Two roles, each with a password generated at first start and kept beside the cluster
(`<state>/pg/secrets/`, owner-only files):

- `railpulse_admin`, the superuser, used by the devstack alone (to create the service role and
  recreate the database), and only over the cluster's own Unix socket (`<state>/pg/run/`, in a
  folder only the stack's owner can enter);
- `railpulse`, what services, the CLI and tests use (`RAILPULSE_PG_DSN` carries its password):
  login only, no SUPERUSER, CREATEDB, CREATEROLE or REPLICATION; it owns the database `railpulse`
  and may connect to nothing else.

pg_hba allows exactly that, with scram-sha-256 everywhere; whatever else is refused. A cluster
made before the roles were split (superuser `railpulse`, trust auth) is made again: it only ever
held a warehouse `up` recreates from the lake anyway.

PostgreSQL refuses to run as root: when we are root, every server command runs as the `postgres`
system user (created if missing) through `runuser`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import structlog

from railpulse_devstack._secrets import kept_secret
from railpulse_devstack.config import StackConfig
from railpulse_devstack.errors import ProcessStartError, StackError

__all__ = [
    "ADMIN",
    "DATABASE",
    "USER",
    "dsn",
    "pid",
    "recreate_database",
    "secret_path",
    "start",
    "stop",
]

logger = structlog.get_logger()

USER = "railpulse"
"""The services' role: owns DATABASE, nothing more."""
DATABASE = "railpulse"
ADMIN = "railpulse_admin"
"""The cluster's superuser, for the devstack only, over the Unix socket only."""
_SYSTEM_USER = "postgres"
_HBA = f"""\
# Written by railpulse_devstack.postgres: the superuser over the Unix socket only, the service
# role to its own database only, passwords (scram-sha-256) always; anything else is refused.
# TYPE  DATABASE    USER        ADDRESS     METHOD
local   all         {ADMIN}                 scram-sha-256
local   {DATABASE}  {USER}                  scram-sha-256
host    {DATABASE}  {USER}      {{network}}    scram-sha-256
"""


def secret_path(config: StackConfig, role: str) -> Path:
    """Where `role`'s password is kept (generated on first use)."""
    return _base(config) / "secrets" / role


def _secret(config: StackConfig, role: str) -> str:
    return kept_secret(secret_path(config, role))


def dsn(config: StackConfig) -> str:
    """The service role's DSN, password included (generated on first use)."""
    password = quote(_secret(config, USER), safe="")
    return f"postgresql://{USER}:{password}@{config.host}:{config.pg_port}/{DATABASE}"


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


def _initdb(config: StackConfig, network: str) -> None:
    data, _, _ = _paths(config)
    marker = data.parent / "roles"
    if (data / "PG_VERSION").exists() and marker.exists():
        return
    if (data / "PG_VERSION").exists():
        # Made before the roles were split (a superuser `railpulse` on trust auth).
        logger.info("postgres.reinitialising", data=str(data), reason="trust-auth cluster")
        stop(config)
        shutil.rmtree(data)
    logger.info("postgres.initdb", data=str(data))
    pwfile = data.parent / ".pwfile"
    pwfile.write_text(_secret(config, ADMIN) + "\n")
    try:
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            uid, gid = _ensure_system_user()
            os.chown(pwfile, uid, gid)
        argv = [
            _bin("initdb"),
            *("-D", str(data), "-U", ADMIN, f"--pwfile={pwfile}"),
            *("--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8"),
            "--no-sync",
        ]
        out = _run(_as_server_user(argv))
    finally:
        pwfile.unlink(missing_ok=True)
    if out.returncode != 0:
        raise ProcessStartError(f"initdb failed: {out.stderr.strip()[-2000:]}")
    hba = data / "pg_hba.conf"
    hba.write_text(_HBA.format(network=network))
    if os.geteuid() == 0:
        os.chown(hba, *_ensure_system_user())
    marker.write_text(f"{ADMIN} over the socket, {USER} owns {DATABASE}\n")


def start(config: StackConfig, *, network: str = "samehost") -> None:
    """initdb if needed, start the server, ensure the service role and its database; idempotent.
    `network`: where the service role may connect from (pg_hba's address: `samehost` for the
    process stack, `samenet` for a container reached over the containers' network)."""
    data, run, log = _paths(config)
    _prepare(config)
    _initdb(config, network)
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
    # The password goes in on stdin, never on a command line. Run every start: it also repairs
    # a role whose attributes or password drifted from what the stack issued.
    role = f"""
        SELECT format('CREATE ROLE %I', '{USER}')
        WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') \\gexec
        ALTER ROLE {USER} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS PASSWORD '{_secret(config, USER)}';
        SELECT format('CREATE DATABASE %I OWNER %I', '{DATABASE}', '{USER}')
        WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}') \\gexec
        ALTER DATABASE {DATABASE} OWNER TO {USER};
    """
    out = _admin_sql(config, role)
    if out.returncode != 0:
        raise ProcessStartError(
            f"PostgreSQL is not answering or refused the roles: {out.stderr.strip()}; see {log}"
        )


def _admin_sql(config: StackConfig, script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` as the superuser, over the cluster's Unix socket."""
    _, run, _ = _paths(config)
    argv = [
        _bin("psql"),
        *("-h", str(run), "-p", str(config.pg_port), "-U", ADMIN, "-d", "postgres"),
        *("-X", "-q", "-v", "ON_ERROR_STOP=1"),
    ]
    env = {**os.environ, "PGPASSWORD": _secret(config, ADMIN)}
    return subprocess.run(
        argv, input=script, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def recreate_database(config: StackConfig) -> None:
    """Drop the database (ending its sessions) and create it empty, owned by the service role."""
    script = f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE);\n"
    script += f"CREATE DATABASE {DATABASE} OWNER {USER};\n"
    out = _admin_sql(config, script)
    if out.returncode != 0:
        raise ProcessStartError(f"recreating {DATABASE} failed: {out.stderr.strip()}")
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
