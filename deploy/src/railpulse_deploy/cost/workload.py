"""The fleet being priced and the sizing rules both designs share.

Everything that is an assumption rather than a price lives in `Assumptions`, with its default
and the reason for it, so a figure can always be traced to a number someone chose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Assumptions", "Workload", "shards_for"]

_SHARD_RECORDS_S = 1000
_SHARD_BYTES_S = 1024 * 1024


@dataclass(frozen=True)
class Assumptions:
    # A frame: envelope (train, seq, timestamps, schema) plus one compact value per channel.
    frame_header_bytes: int = 96
    bytes_per_channel: int = 16
    # Kinesis shards are sized to this fraction of their write limits (headroom for bursts
    # and backfill after a coverage gap).
    shard_utilisation: float = 0.8
    # Frames one detector task (1 vCPU) scores per second; the telemetry stream gets at least
    # one shard per detector task's worth, since the KCL gives one shard to one worker.
    detector_frames_per_task_s: int = 500
    # Ingest re-publishes to `telemetry` with KPL-style aggregation, within one poll batch.
    ingest_poll_interval_s: float = 0.25
    # Alarm transitions (raise or clear) per train per day; each costs a shadow update by the
    # notifier, the train's reported-state ack and the delta message to the train.
    alarm_transitions_per_train_day: float = 4.0
    # Parquet (zstd, columnar) against the frame's wire size.
    parquet_compression: float = 8.0
    # Lake storage is priced at month 12 of a rolling lifecycle: 1 month Standard, 2 months
    # Standard-IA, the rest Glacier Instant Retrieval.
    lake_months: int = 12
    # The warehouse holds this many days of frames (Parquet-sized) for engineers.
    warehouse_days: int = 90
    # Redshift Serverless: base RPUs and active hours a day (hourly COPY loads + queries).
    warehouse_base_rpu: int = 4
    warehouse_hours_day: float = 1.0
    # Interface endpoints (kinesis-streams, sqs, ecr.api, ecr.dkr, logs, glue, iot.data,
    # redshift-serverless) in every AZ the tasks run in: one AZ's endpoints serving both would
    # cost $0.02/GB cross-AZ on the Kinesis traffic, more than the hourly fee it saves.
    # S3 and DynamoDB use free gateway endpoints.
    interface_endpoints: int = 8
    endpoint_azs: int = 2
    # Service logs (JSON, INFO in steady state) per task per day.
    log_gb_per_task_day: float = 0.05
    custom_metrics: int = 24  # ~5 EMF metrics x 4 services + OpenShardCount x 3 streams
    alarms: int = 14
    # Reference design: count the shadow delta published to the train for every per-frame
    # shadow update (it is on the seed's path to the train).
    reference_shadow_deltas: bool = True
    # Reference design: KDA RCF throughput per KPU, Lambda batch and per-call time.
    kda_frames_per_kpu_s: int = 250
    lambda_batch: int = 100
    lambda_ms_per_shadow_update: float = 20.0
    lambda_memory_gb: float = 0.128


@dataclass(frozen=True)
class Workload:
    trains: int
    hz: float = 1.0
    channels: int = 32
    assumptions: Assumptions = Assumptions()

    def __post_init__(self) -> None:
        if self.trains < 1 or self.hz <= 0 or self.channels < 1:
            raise ValueError("trains >= 1, hz > 0 and channels >= 1 are required")

    @property
    def frames_s(self) -> float:
        """One message per train per frame: the latency goal rules out batching live frames."""
        return self.trains * self.hz

    @property
    def frame_bytes(self) -> int:
        a = self.assumptions
        return a.frame_header_bytes + self.channels * a.bytes_per_channel

    def per_month(self, per_second: float, hours: float) -> float:
        return per_second * 3600.0 * hours


def shards_for(records_s: float, bytes_s: float, utilisation: float, floor: int = 1) -> int:
    """Provisioned shards for a write rate, kept under `utilisation` of both shard limits."""
    by_records = math.ceil(records_s / (_SHARD_RECORDS_S * utilisation))
    by_bytes = math.ceil(bytes_s / (_SHARD_BYTES_S * utilisation))
    return max(floor, 1, by_records, by_bytes)
