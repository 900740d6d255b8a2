"""Every metric the services emit: its name, unit, dimensions and the services that own it.

One list, read by the services (their emission points use these names), by `deploy` (alarms,
scaling and the dashboard are built from it) and by the tests (the metric contract test checks
that every metric an alarm or the dashboard watches is emitted, with those dimensions, by the
service that owns it, in a real run of the four services).

Dimensions: KCL consumers (ingest, detector, archiver) carry `service` and `stream` (the stream
they read); the archiver's warehouse loads carry `service` = archiver and `stream` = warehouse;
the notifier carries `service` only. `every_batch` metrics are emitted with every batch (or
load), zeros included, so the alarms that watch them see data whenever the service runs; the
others only when there is something to count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from railpulse_shared.metrics import Unit

__all__ = [
    "ALARMED",
    "BATCH_LATENCY",
    "CLOCK_SKEW",
    "ERROR_RATE",
    "FRAMES_CLOCK_SKEWED",
    "HANDLER_ERRORS",
    "HANDLER_ERRORS_DEAD_LETTERED",
    "KCL_SERVICES",
    "MESSAGES_POISON",
    "MESSAGES_RECEIVED",
    "METRICS",
    "MILLIS_BEHIND_LATEST",
    "MODEL_STATES_DROPPED",
    "RECORDS_DEAD_LETTERED",
    "RECORDS_IN",
    "RECORDS_RETRIED",
    "SILENT_TRAINS",
    "SNAPSHOTS_FAILED",
    "WAREHOUSE_OBJECTS_SET_ASIDE",
    "WAREHOUSE_STREAM",
    "ErrorRate",
    "Metric",
    "metric",
]

KCL_SERVICES: Final = ("ingest", "detector", "archiver")
WAREHOUSE_STREAM: Final = "warehouse"
"""The `stream` dimension of the archiver's warehouse loads (they read no stream)."""

_KCL_DIMS = ("service", "stream")
_SERVICE_DIMS = ("service",)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: Unit
    owners: tuple[str, ...]
    dimensions: tuple[str, ...]
    meaning: str
    every_batch: bool = False
    """Emitted with every batch or load, zeros included (what alarms watch)."""
    prefix: bool = False
    """`name` is a prefix: the emitted names are `<name><suffix>` (one per reason or state)."""


_LIST = (
    # The KCL adapter (railpulse_shared.kcl), for every KCL consumer.
    Metric("RecordsIn", "Count", KCL_SERVICES, _KCL_DIMS, "records in the batch", every_batch=True),
    Metric(
        "RecordsDeadLettered",
        "Count",
        KCL_SERVICES,
        _KCL_DIMS,
        "records dead-lettered (poison, or a handler that kept raising): the failed records",
        every_batch=True,
    ),
    Metric("RecordsRetried", "Count", KCL_SERVICES, _KCL_DIMS, "transient failures retried"),
    Metric("HandlerErrors", "Count", KCL_SERVICES, _KCL_DIMS, "handler calls that raised"),
    Metric("HandlerErrorsDeadLettered", "Count", KCL_SERVICES, _KCL_DIMS, "of them dead-lettered"),
    Metric("BatchLatency", "Milliseconds", KCL_SERVICES, _KCL_DIMS, "time to process a batch"),
    Metric("MillisBehindLatest", "Milliseconds", KCL_SERVICES, _KCL_DIMS, "how far behind the tip"),
    # ingest
    Metric("UserRecordsIn", "Count", ("ingest",), _KCL_DIMS, "frames in the records"),
    Metric("BytesIn", "Bytes", ("ingest",), _KCL_DIMS, "bytes read"),
    Metric("DuplicatesDropped", "Count", ("ingest",), _KCL_DIMS, "frames seen before"),
    Metric(
        "SeqConflicts", "Count", ("ingest",), _KCL_DIMS, "same (train, epoch, seq), other content"
    ),
    Metric("UncataloguedReadings", "Count", ("ingest",), _KCL_DIMS, "channels not catalogued"),
    Metric(
        "FramesClockSkewed",
        "Count",
        ("ingest",),
        _KCL_DIMS,
        "live frames whose sensor time is off the IoT receipt time by more than the tolerance",
        every_batch=True,
    ),
    Metric("ClockSkew", "Milliseconds", ("ingest",), _KCL_DIMS, "a skewed device's skew"),
    Metric(
        "SilentTrains",
        "Count",
        ("ingest",),
        _KCL_DIMS,
        "trains seen in the last day that have sent nothing for the silence threshold (a gauge "
        "per shard)",
        every_batch=True,
    ),
    Metric("DedupBeyondWindow", "Count", ("ingest",), _KCL_DIMS, "frames older than dedup"),
    Metric("DedupTrainsEvicted", "Count", ("ingest",), _KCL_DIMS, "trains dedup forgot"),
    Metric("RecordsRejected", "Count", ("ingest",), _KCL_DIMS, "rejects sent"),
    Metric("RecordsForwarded", "Count", ("ingest",), _KCL_DIMS, "frames put on telemetry"),
    Metric("Rejected.", "Count", ("ingest",), _KCL_DIMS, "rejects by reason", prefix=True),
    # detector
    Metric("FramesScored", "Count", ("detector",), _KCL_DIMS, "frames judged"),
    Metric("AnomaliesEmitted", "Count", ("detector",), _KCL_DIMS, "anomalies sent"),
    Metric("DetectionLatency", "Milliseconds", ("detector",), _KCL_DIMS, "receipt to anomaly"),
    Metric("ScoringTime", "Milliseconds", ("detector",), _KCL_DIMS, "a batch's rules and models"),
    Metric(
        "SnapshotCopyTime", "Milliseconds", ("detector",), _KCL_DIMS, "the copy on the scoring path"
    ),
    Metric(
        "SnapshotWriteTime", "Milliseconds", ("detector",), _KCL_DIMS, "encode and upload, off it"
    ),
    Metric("SnapshotBytes", "Bytes", ("detector",), _KCL_DIMS, "a model snapshot's size"),
    Metric(
        "GcPauseTime",
        "Milliseconds",
        ("detector",),
        _KCL_DIMS,
        "the longest garbage-collection pause since the last batch (it stalls scoring too)",
    ),
    Metric(
        "SnapshotsFailed",
        "Count",
        ("detector",),
        _KCL_DIMS,
        "model snapshots not written (the checkpoint waits for the next one that lands)",
    ),
    Metric(
        "ModelStatesDropped",
        "Count",
        ("detector",),
        _KCL_DIMS,
        "trains whose model state a snapshot could not hold (they start their warm-up again)",
    ),
    # archiver
    Metric("Flushes", "Count", ("archiver",), _KCL_DIMS, "buffer flushes"),
    Metric("ObjectsWritten", "Count", ("archiver",), _KCL_DIMS, "Parquet objects written"),
    Metric("RowsWritten", "Count", ("archiver",), _KCL_DIMS, "rows written"),
    Metric("ParquetBytes", "Bytes", ("archiver",), _KCL_DIMS, "Parquet bytes written"),
    Metric("BufferedRecords", "Count", ("archiver",), _KCL_DIMS, "records buffered"),
    Metric("RecordsUnstorable", "Count", ("archiver",), _KCL_DIMS, "records the lake cannot hold"),
    Metric(
        "WarehouseObjectsLoaded", "Count", ("archiver",), _KCL_DIMS, "lake objects loaded", True
    ),
    Metric("WarehouseRowsLoaded", "Count", ("archiver",), _KCL_DIMS, "rows loaded", True),
    Metric(
        "WarehouseObjectsSetAside",
        "Count",
        ("archiver",),
        _KCL_DIMS,
        "lake objects the warehouse refused, still set aside",
        every_batch=True,
    ),
    # notifier
    Metric("MessagesReceived", "Count", ("notifier",), _SERVICE_DIMS, "alerts received", True),
    Metric("MessagesProcessed", "Count", ("notifier",), _SERVICE_DIMS, "alerts handled", True),
    Metric(
        "MessagesPoison",
        "Count",
        ("notifier",),
        _SERVICE_DIMS,
        "alerts that failed for good this receive (back to the queue; the DLQ after 5)",
        every_batch=True,
    ),
    Metric("MessagesTransient", "Count", ("notifier",), _SERVICE_DIMS, "alerts to retry"),
    Metric("NotificationLatency", "Milliseconds", ("notifier",), _SERVICE_DIMS, "taken to done"),
    Metric(
        "ReceiptToShadowLatency", "Milliseconds", ("notifier",), _SERVICE_DIMS, "receipt to shadow"
    ),
    Metric("DuplicateAnomalies", "Count", ("notifier",), _SERVICE_DIMS, "anomalies seen before"),
    Metric("StoreConflicts", "Count", ("notifier",), _SERVICE_DIMS, "alarm table races"),
    Metric("Resyncs", "Count", ("notifier",), _SERVICE_DIMS, "shadow resyncs"),
    Metric("ShadowUpdates", "Count", ("notifier",), _SERVICE_DIMS, "shadow writes"),
    Metric("ShadowConflicts", "Count", ("notifier",), _SERVICE_DIMS, "shadow version races"),
    Metric("ShadowRepairs", "Count", ("notifier",), _SERVICE_DIMS, "shadows repaired"),
    Metric("SweepFailures", "Count", ("notifier",), _SERVICE_DIMS, "sweeps that failed"),
    Metric("Alarms", "Count", ("notifier",), _SERVICE_DIMS, "alarm transitions", prefix=True),
)

METRICS: Final[dict[str, Metric]] = {m.name: m for m in _LIST}


def metric(name: str) -> str:
    """`name`, checked against the list (for emission points that build names)."""
    if name in METRICS:
        return name
    if any(m.prefix and name.startswith(m.name) for m in _LIST):
        return name
    raise KeyError(f"{name} is not in railpulse_shared.metric_names")


RECORDS_IN: Final = metric("RecordsIn")
RECORDS_DEAD_LETTERED: Final = metric("RecordsDeadLettered")
RECORDS_RETRIED: Final = metric("RecordsRetried")
HANDLER_ERRORS: Final = metric("HandlerErrors")
HANDLER_ERRORS_DEAD_LETTERED: Final = metric("HandlerErrorsDeadLettered")
BATCH_LATENCY: Final = metric("BatchLatency")
MILLIS_BEHIND_LATEST: Final = metric("MillisBehindLatest")
FRAMES_CLOCK_SKEWED: Final = metric("FramesClockSkewed")
CLOCK_SKEW: Final = metric("ClockSkew")
SILENT_TRAINS: Final = metric("SilentTrains")
SNAPSHOTS_FAILED: Final = metric("SnapshotsFailed")
MODEL_STATES_DROPPED: Final = metric("ModelStatesDropped")
WAREHOUSE_OBJECTS_SET_ASIDE: Final = metric("WarehouseObjectsSetAside")
MESSAGES_RECEIVED: Final = metric("MessagesReceived")
MESSAGES_POISON: Final = metric("MessagesPoison")


@dataclass(frozen=True)
class ErrorRate:
    """A service's error rate: `100 * failed / total` per period (0 when nothing came)."""

    failed: str
    total: str


ERROR_RATE: Final[dict[str, ErrorRate]] = {
    **{s: ErrorRate(RECORDS_DEAD_LETTERED, RECORDS_IN) for s in KCL_SERVICES},
    "notifier": ErrorRate(MESSAGES_POISON, MESSAGES_RECEIVED),
}

ALARMED: Final = frozenset(
    {
        RECORDS_IN,
        RECORDS_DEAD_LETTERED,
        FRAMES_CLOCK_SKEWED,
        SILENT_TRAINS,
        SNAPSHOTS_FAILED,
        MODEL_STATES_DROPPED,
        WAREHOUSE_OBJECTS_SET_ASIDE,
        MESSAGES_RECEIVED,
        MESSAGES_POISON,
    }
)
"""Metrics an alarm watches (the deploy's alarms are built from these names)."""
