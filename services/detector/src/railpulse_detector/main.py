"""`railpulse-detector`: the detector service (a KCL consumer of Kinesis `telemetry`).

Loads its settings, then becomes the KCL MultiLangDaemon, which runs
`railpulse_detector.processor` once per leased shard. SIGTERM goes to the daemon, which asks every
shard processor to shut down (flush, snapshot, checkpoint) within `kcl_shutdown_grace_ms`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from railpulse_detector.settings import APPLICATION_NAME, DetectorSettings
from railpulse_shared.entrypoint import service_parser, service_settings
from railpulse_shared.multilang import exec_daemon, kcl_application


def main(argv: list[str] | None = None) -> int:
    service_parser(
        "railpulse-detector",
        "Score every accepted frame (hard limits, sensor faults, Random Cut Forest) and send "
        "anomalies to SQS alerts and Kinesis events (settings: railpulse_detector.settings).",
    ).parse_args(argv)
    settings = service_settings("railpulse-detector", DetectorSettings)
    app = kcl_application(
        settings,
        application_name=APPLICATION_NAME,
        stream_name=settings.stream_telemetry,
        processor_module="railpulse_detector.processor",
    )
    exec_daemon(app, Path(settings.kcl_state_dir))
    return 0  # not reached: the daemon replaced this process


if __name__ == "__main__":
    sys.exit(main())
