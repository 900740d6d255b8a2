"""`railpulse-detector`: the detector service (a KCL consumer of Kinesis `telemetry`).

Loads its settings, then becomes the KCL MultiLangDaemon, which runs
`railpulse_detector.processor` once per leased shard. SIGTERM goes to the daemon, which asks every
shard processor to shut down (flush, snapshot, checkpoint) within `kcl_shutdown_grace_ms`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from railpulse_detector.settings import APPLICATION_NAME, DetectorSettings
from railpulse_shared.config import load_settings
from railpulse_shared.errors import ConfigError
from railpulse_shared.multilang import exec_daemon, kcl_application


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="railpulse-detector",
        description="Score every accepted frame (hard limits, sensor faults, Random Cut Forest) "
        "and send anomalies to SQS alerts and Kinesis events. Configured by RAILPULSE_* and "
        "AWS_* environment variables (see railpulse_detector.settings).",
    )
    parser.parse_args(argv)
    try:
        settings = load_settings(DetectorSettings)
        app = kcl_application(
            settings,
            application_name=APPLICATION_NAME,
            stream_name=settings.stream_telemetry,
            processor_module="railpulse_detector.processor",
        )
        exec_daemon(app, Path(settings.kcl_state_dir))
    except ConfigError as exc:
        print(f"railpulse-detector: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
