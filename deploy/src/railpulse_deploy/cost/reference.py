"""The reference design of seed 000, priced for the same fleet at list prices.

IoT topic -> rule (2 actions) -> Kinesis Data Stream -> Kinesis Data Analytics (SQL,
RANDOM_CUT_FOREST) -> Kinesis Data Stream -> Lambda -> device shadow (one update per frame);
the same rule -> Firehose (+ transform Lambda) -> S3 -> COPY -> a Redshift node running 24x7.

Kinesis Data Analytics for SQL, the reference's detector, is retired by AWS (no new
applications since 15 October 2025, applications stopped from 27 January 2026); its successor,
Amazon Managed Service for Apache Flink, is also priced per KPU-hour (plus one orchestration KPU
and 50 GB running storage per KPU per application), so the KPU-hour line is kept and the Flink
surcharge is shown as a note, not added.

Counted: the delta message each per-frame shadow update publishes to the train (the seed's
"Device Shadow -> IoT topic -> IoT sensor"); `Assumptions.reference_shadow_deltas=False` leaves
it out. Not counted (the reference is, if anything, understated): the train's reported-state
updates and the OpenSearch domain the seed suggests for the CEO's real-time view.
"""

from __future__ import annotations

import math

from railpulse_deploy.cost._items import LineItem, units
from railpulse_deploy.cost._prices import Prices
from railpulse_deploy.cost.workload import Workload, shards_for

__all__ = ["KDA_RETIREMENT_NOTE", "reference_items"]

KDA_RETIREMENT_NOTE = (
    "Kinesis Data Analytics for SQL (the reference's detector) is retired by AWS: no new "
    "applications since 2025-10-15, running applications stopped from 2026-01-27. Its successor, "
    "Amazon Managed Service for Apache Flink, is priced per KPU-hour plus one orchestration KPU "
    "and 50 GB running storage per KPU per application."
)
_DAYS = 365.0 / 12.0


def _tiered_messaging(m_msgs: float, p: Prices) -> float:
    t1, t2 = p("iot", "messaging_tier1_limit_m"), p("iot", "messaging_tier2_limit_m")
    return (
        min(m_msgs, t1) * p("iot", "messaging_tier1_per_m")
        + max(0.0, min(m_msgs, t2) - t1) * p("iot", "messaging_tier2_per_m")
        + max(0.0, m_msgs - t2) * p("iot", "messaging_tier3_per_m")
    )


def reference_items(w: Workload, p: Prices) -> list[LineItem]:
    a, h = w.assumptions, p.hours_per_month
    msgs = w.per_month(w.frames_s, h)
    m_units = msgs * units(w.frame_bytes, p("iot", "meter_unit_bytes")) / 1e6
    items: list[LineItem] = []

    def add(service: str, item: str, qty: float, unit: str, usd: float) -> None:
        items.append(LineItem(service, item, qty, unit, usd))

    minutes = w.trains * 60 * h
    add(
        "IoT Core",
        "connectivity",
        minutes / 1e6,
        "M minutes",
        minutes / 1e6 * p("iot", "connectivity_per_m_minutes"),
    )
    add(
        "IoT Core",
        "messaging in (one per frame)",
        m_units,
        "M messages",
        _tiered_messaging(m_units, p),
    )
    if a.reference_shadow_deltas:
        # The seed's path ends "Device Shadow -> IoT topic -> IoT sensor": every per-frame
        # desired-state update publishes a delta to the train, metered as messaging (same tiers).
        out = _tiered_messaging(2 * m_units, p) - _tiered_messaging(m_units, p)
        add(
            "IoT Core",
            "messaging out: shadow delta to the train per frame",
            m_units,
            "M messages",
            out,
        )
    add("IoT Core", "rules triggered", m_units, "M", m_units * p("iot", "rules_triggered_per_m"))
    add(
        "IoT Core",
        "actions executed (Kinesis + Firehose)",
        2 * m_units,
        "M",
        2 * m_units * p("iot", "actions_executed_per_m"),
    )
    shadow = msgs * units(w.frame_bytes, p("iot", "shadow_unit_bytes")) / 1e6
    add(
        "IoT Core",
        "shadow update per frame",
        shadow,
        "M ops",
        shadow * p("iot", "shadow_ops_per_m"),
    )

    shards = shards_for(w.frames_s, w.frames_s * w.frame_bytes, a.shard_utilisation)
    add(
        "Kinesis",
        f"shard-hours (input {shards}, output {shards})",
        2 * shards * h,
        "shard-h",
        2 * shards * h * p("kinesis", "shard_hour"),
    )
    put = 2 * msgs * units(w.frame_bytes, p("kinesis", "put_unit_bytes")) / 1e6
    add(
        "Kinesis",
        "PUT units (input and KDA output, per frame)",
        put,
        "M units",
        put * p("kinesis", "put_units_per_m"),
    )

    kpu = max(1, math.ceil(w.frames_s / a.kda_frames_per_kpu_s))
    add(
        "KDA for SQL (retired)",
        f"{kpu} KPU RANDOM_CUT_FOREST, 24x7",
        kpu * h,
        "KPU-h",
        kpu * h * p("kda", "kpu_hour"),
    )

    invocations = msgs / a.lambda_batch / 1e6
    gb_s = msgs * a.lambda_ms_per_shadow_update / 1000 * a.lambda_memory_gb
    add(
        "Lambda",
        "shadow updater invocations",
        invocations,
        "M",
        invocations * p("lambda", "requests_per_m"),
    )
    add("Lambda", "shadow updater duration", gb_s, "GB-s", gb_s * p("lambda", "gb_second_x86"))

    fh_gb = (
        msgs
        * units(w.frame_bytes, p("firehose", "record_rounding_bytes"))
        * p("firehose", "record_rounding_bytes")
        / 2**30
    )
    add(
        "Firehose",
        "ingestion (records rounded up to 5 KB)",
        fh_gb,
        "GB",
        fh_gb * p("firehose", "ingest_per_gb"),
    )
    # Transform Lambda: invoked per 3 MB buffer, ~1 s at 128 MB.
    tx = msgs * w.frame_bytes / 3e6
    add(
        "Lambda",
        "Firehose transform",
        tx / 1e6,
        "M",
        tx / 1e6 * p("lambda", "requests_per_m") + tx * 0.128 * p("lambda", "gb_second_x86"),
    )

    raw_gb = msgs * w.frame_bytes / 1e9  # JSON lands uncompressed
    add(
        "S3",
        "raw JSON Standard (last 30 days)",
        raw_gb,
        "GB-month",
        raw_gb * p("s3", "standard_gb_month"),
    )
    gir = max(0, a.lake_months - 1) * raw_gb
    add(
        "S3",
        f"raw JSON Glacier IR (to month {a.lake_months})",
        gir,
        "GB-month",
        gir * p("s3", "glacier_ir_gb_month"),
    )
    objects = h * 3600 / 300  # Firehose flushes every 5 minutes
    add("S3", "PUT requests", objects / 1e3, "k", objects / 1e3 * p("s3", "put_per_k"))

    add("Redshift", "1 x ra3.large, 24x7", h, "node-h", h * p("redshift", "ra3_large_node_hour"))
    wh_gb = raw_gb / a.parquet_compression * a.warehouse_days / _DAYS
    add(
        "Redshift",
        f"managed storage ({a.warehouse_days} days)",
        wh_gb,
        "GB-month",
        wh_gb * p("redshift", "managed_storage_gb_month"),
    )
    return items
