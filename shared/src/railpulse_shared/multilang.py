"""Run a KCL consumer: write the MultiLangDaemon's properties, find the jars, start Java.

The jars ship inside the installed `amazon_kclpy` package (KCL 2.5.8). A service's `main` calls
`exec_daemon` (in a container the JVM becomes the main process and receives SIGTERM, then shuts
its record processors down gracefully within `shutdownGraceMillis`); local tooling uses
`start_daemon` to run it as a child process. The daemon starts `python -m <processor_module>`
once per leased shard.

Settings that matter here (measured, see docs/design.md): `shardSyncIntervalMillis` 1000 locally makes
the first start take seconds rather than a minute; a fixed `workerId` lets a restarted worker
take its leases back at once; `idleTimeBetweenReadsInMillis` sets put-to-processor latency
(~135 ms at 200). In AWS a shard allows 5 GetRecords/s shared by its polling consumers, which is
why latency-critical consumers use enhanced fan-out (`retrievalMode = FANOUT`) there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, Literal, NoReturn

import msgspec

from railpulse_shared.config import CommonSettings
from railpulse_shared.errors import ConfigError

__all__ = [
    "KclApplication",
    "KclSettings",
    "exec_daemon",
    "initial_timestamp",
    "jars_dir",
    "kcl_application",
    "start_daemon",
    "write_properties",
]

DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
LOG_REQUESTS_CONFIG = "kcl_requests.logback.xml"


class KclSettings(CommonSettings, frozen=True, kw_only=True):
    """The KCL knobs of a consumer service (`RAILPULSE_KCL_*`)."""

    kcl_worker_id: str = ""
    """Stable per task: a restarted worker then takes its own leases back at once."""
    kcl_initial_position: Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"] = "TRIM_HORIZON"
    """Where a shard with no checkpoint in the lease table starts (a checkpoint always wins:
    to replay, delete the application's leases first; see docs/runbooks/iterator-age.md)."""
    kcl_initial_timestamp: str = ""
    """With `AT_TIMESTAMP`: the moment to start from, ISO 8601 (naive means UTC) or epoch
    seconds."""
    kcl_retrieval_mode: Literal["POLLING", "FANOUT"] = "POLLING"
    kcl_idle_time_ms: int = 200
    kcl_max_records: int = 1000
    kcl_shard_sync_ms: int = 60000
    kcl_failover_ms: int = 10000
    kcl_shutdown_grace_ms: int = 5000
    kcl_heap_mb: int = 384
    kcl_log_requests: bool = False
    """Log every AWS request of the daemon and every GetRecords result (`kcl_requests.logback.xml`):
    what explains a slow latency sample in the KCL (a GetRecords call that hung, its retries)."""
    kcl_checkpoint_interval_s: float = 5.0
    kcl_state_dir: str = "/tmp/railpulse-kcl"
    """Where the properties file is written."""


class KclApplication(msgspec.Struct, frozen=True, kw_only=True):
    """One KCL application (a lease table) consuming one stream with one processor module."""

    application_name: str
    stream_name: str
    processor_module: str
    region: str
    worker_id: str
    endpoint_url: str | None = None
    initial_position: str = "TRIM_HORIZON"
    initial_timestamp_s: int | None = None
    """With `AT_TIMESTAMP`: epoch seconds (the KCL's resolution for this property)."""
    retrieval_mode: str = "POLLING"
    idle_time_ms: int = 200
    max_records: int = 1000
    shard_sync_ms: int = 60000
    failover_ms: int = 10000
    shutdown_grace_ms: int = 5000
    heap_mb: int = 384
    log_requests: bool = False
    python: str = sys.executable

    def properties(self) -> str:
        props: dict[str, str | int] = {
            "executableName": f"{self.python} -m {self.processor_module}",
            "streamName": self.stream_name,
            "applicationName": self.application_name,
            "processingLanguage": "python/3.11",
            "regionName": self.region,
            "workerId": self.worker_id,
            "retrievalMode": self.retrieval_mode,
            "idleTimeBetweenReadsInMillis": self.idle_time_ms,
            "maxRecords": self.max_records,
            "shardSyncIntervalMillis": self.shard_sync_ms,
            "failoverTimeMillis": self.failover_ms,
            "shutdownGraceMillis": self.shutdown_grace_ms,
            "callProcessRecordsEvenForEmptyRecordList": "true",
            "metricsLevel": "NONE",
            # Environment variables locally; the ECS task role in AWS (part of the default chain).
            "AWSCredentialsProvider": "EnvironmentVariableCredentialsProvider"
            if self.endpoint_url
            else "DefaultAWSCredentialsProviderChain",
        }
        if self.initial_position == "AT_TIMESTAMP":
            if self.initial_timestamp_s is None:
                raise ConfigError("RAILPULSE_KCL_INITIAL_TIMESTAMP", "AT_TIMESTAMP needs a time")
            # KCL 2.5.8's MultiLangDaemonConfiguration decodes this property as epoch seconds
            # into InitialPositionInStreamExtended.newInitialPositionAtTimestamp; it must be the
            # only position property (initialPositionInStream would overwrite it).
            props["initialPositionInStreamExtended"] = self.initial_timestamp_s
        else:
            props["initialPositionInStream"] = self.initial_position
        if self.endpoint_url:
            props["kinesisEndpoint"] = self.endpoint_url
            props["dynamoDBEndpoint"] = self.endpoint_url
        return "".join(f"{key} = {value}\n" for key, value in props.items())

    def command(self, properties_file: Path, java: str = "java") -> list[str]:
        options = [f"-Xmx{self.heap_mb}m"]
        if self.log_requests:
            config = resources.files("railpulse_shared").joinpath(LOG_REQUESTS_CONFIG)
            options.append(f"-Dlogback.configurationFile={config}")
        if self.endpoint_url:
            # moto answers the SDK's CBOR requests with 500s; JSON works.
            options.append("-Daws.cborEnabled=false")
        classpath = f"{jars_dir()}{os.sep}*"
        return [
            java,
            *options,
            "-cp",
            classpath,
            DAEMON_CLASS,
            "--properties-file",
            str(properties_file),
        ]


def kcl_application(
    settings: KclSettings, *, application_name: str, stream_name: str, processor_module: str
) -> KclApplication:
    """A service's KCL application from its settings."""
    return KclApplication(
        application_name=application_name,
        stream_name=stream_name,
        processor_module=processor_module,
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        worker_id=settings.kcl_worker_id or f"{application_name}-{os.uname().nodename}",
        initial_position=settings.kcl_initial_position,
        initial_timestamp_s=initial_timestamp(settings),
        retrieval_mode=settings.kcl_retrieval_mode,
        idle_time_ms=settings.kcl_idle_time_ms,
        max_records=settings.kcl_max_records,
        shard_sync_ms=settings.kcl_shard_sync_ms,
        failover_ms=settings.kcl_failover_ms,
        shutdown_grace_ms=settings.kcl_shutdown_grace_ms,
        heap_mb=settings.kcl_heap_mb,
        log_requests=settings.kcl_log_requests,
    )


def initial_timestamp(settings: KclSettings) -> int | None:
    """`RAILPULSE_KCL_INITIAL_TIMESTAMP` as epoch seconds: required with AT_TIMESTAMP, refused
    without it (a timestamp that would silently not apply is a mistake)."""
    text = settings.kcl_initial_timestamp.strip()
    if settings.kcl_initial_position != "AT_TIMESTAMP":
        if text:
            raise ConfigError(
                "RAILPULSE_KCL_INITIAL_TIMESTAMP",
                "is only read with RAILPULSE_KCL_INITIAL_POSITION=AT_TIMESTAMP",
            )
        return None
    if not text:
        raise ConfigError("RAILPULSE_KCL_INITIAL_TIMESTAMP", "is required with AT_TIMESTAMP")
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            "RAILPULSE_KCL_INITIAL_TIMESTAMP",
            f"{text!r} is neither ISO 8601 nor epoch seconds",
        ) from exc
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def jars_dir() -> Path:
    """The folder of KCL jars inside the installed amazon_kclpy package."""
    path = Path(str(resources.files("amazon_kclpy"))) / "jars"
    if not any(path.glob("amazon-kinesis-client-multilang-*.jar")):
        raise ConfigError(
            "amazon_kclpy",
            f"no KCL jars in {path}: install amazon-kclpy with its jars (see shared/pyproject.toml)",
        )
    return path


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ConfigError("PATH", "java not found: the KCL MultiLangDaemon needs Java 17")
    return java


def write_properties(app: KclApplication, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{app.application_name}.properties"
    path.write_text(app.properties())
    return path


def exec_daemon(app: KclApplication, directory: Path) -> NoReturn:
    """Replace this process with the MultiLangDaemon (a container's main process)."""
    command = app.command(write_properties(app, directory), _java())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def start_daemon(
    app: KclApplication,
    directory: Path,
    *,
    log: IO[bytes] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the MultiLangDaemon as a child process (local stack, tests, demo)."""
    command = app.command(write_properties(app, directory), _java())
    return subprocess.Popen(
        command,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
