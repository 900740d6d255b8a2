"""railpulse's monthly bill: IoT Basic Ingest -> Kinesis -> Fargate KCL services -> S3/Redshift.

The levers that make it cheap, each visible as a line item below:
- Basic Ingest (`$aws/rules/<rule>/...`): no IoT messaging charge, only the rule and its action.
- Shadow updates only on alarm transitions, not per frame.
- KPL-style aggregation from ingest onwards: one `telemetry` record carries many frames.
- Graviton (ARM64) Fargate for the latency-critical services, Fargate Spot (x86: Spot has no
  ARM64) for the archiver, which checkpoints and tolerates interruption.
- Redshift Serverless at its 4 RPU base, active about an hour a day, instead of a 24x7 node.
- The detector on enhanced fan-out; everything else polls, so no extra consumers are paid for.
"""

from __future__ import annotations

import math

from railpulse_deploy.cost._items import LineItem, units
from railpulse_deploy.cost._prices import Prices
from railpulse_deploy.cost.workload import Workload, shards_for

__all__ = ["LEVERS", "railpulse_items", "railpulse_sizing"]

LEVERS = (
    "IoT Core Basic Ingest: no messaging charge; the rule and its Kinesis action remain "
    "($0.30 per million frames, the largest railpulse item).",
    "Device shadow written only on alarm transitions, never per frame.",
    "KPL-style aggregation from ingest on: one telemetry record carries many frames.",
    "Graviton (ARM64) Fargate for ingest, detector, notifier; Fargate Spot (x86) for the archiver.",
    "Redshift Serverless at a 4 RPU base, about an hour a day, instead of a 24x7 node.",
    "Enhanced fan-out only for the detector; the other consumers poll.",
)

# (vCPU, GB) per task; the KCL daemon (JVM, ~190 MB) plus the Python processor fit in 1 GB.
TASK_SIZES: dict[str, tuple[float, float]] = {
    "ingest": (0.5, 1.0),
    "detector": (1.0, 2.0),
    "notifier": (0.25, 0.5),
    "archiver-telemetry": (0.5, 1.0),
    "archiver-events": (0.25, 1.0),
}
_DAYS = 365.0 / 12.0


def railpulse_sizing(w: Workload) -> dict[str, int]:
    """Shards per stream; the KCL services run one task per shard (never more)."""
    a = w.assumptions
    raw = shards_for(w.frames_s, w.frames_s * w.frame_bytes, a.shard_utilisation)
    per_record = max(
        1, min(25600 // w.frame_bytes, int(w.frames_s / raw * a.ingest_poll_interval_s))
    )
    telemetry = shards_for(
        w.frames_s / per_record,
        w.frames_s * w.frame_bytes,
        a.shard_utilisation,
        floor=math.ceil(w.frames_s / a.detector_frames_per_task_s),
    )
    return {
        "telemetry-raw": raw,
        "telemetry": telemetry,
        "events": 1,
        "frames_per_record": per_record,
    }


def railpulse_items(w: Workload, p: Prices) -> list[LineItem]:
    a, h = w.assumptions, p.hours_per_month
    size = railpulse_sizing(w)
    msgs = w.per_month(w.frames_s, h)
    gb = msgs * w.frame_bytes / 1e9
    items: list[LineItem] = []

    def add(service: str, item: str, qty: float, unit: str, usd: float) -> None:
        items.append(LineItem(service, item, qty, unit, usd))

    # IoT Core
    minutes = w.trains * 60 * h
    add(
        "IoT Core",
        "connectivity",
        minutes / 1e6,
        "M minutes",
        minutes / 1e6 * p("iot", "connectivity_per_m_minutes"),
    )
    add("IoT Core", "messaging (Basic Ingest: not charged)", msgs / 1e6, "M messages", 0.0)
    rule_units = msgs * units(w.frame_bytes, p("iot", "meter_unit_bytes")) / 1e6
    add(
        "IoT Core",
        "rules triggered (Basic Ingest)",
        rule_units,
        "M",
        rule_units * p("iot", "rules_triggered_per_m"),
    )
    add(
        "IoT Core",
        "Kinesis actions executed",
        rule_units,
        "M",
        rule_units * p("iot", "actions_executed_per_m"),
    )
    transitions = w.trains * a.alarm_transitions_per_train_day * _DAYS
    shadow_ops = transitions * 2  # notifier's desired update + the train's reported ack
    add(
        "IoT Core",
        "shadow updates (alarm transitions only)",
        shadow_ops / 1e6,
        "M ops",
        shadow_ops / 1e6 * p("iot", "shadow_ops_per_m"),
    )
    add(
        "IoT Core",
        "shadow delta messages to trains",
        transitions / 1e6,
        "M messages",
        transitions / 1e6 * p("iot", "messaging_tier1_per_m"),
    )

    # Kinesis Data Streams
    shards = size["telemetry-raw"] + size["telemetry"] + size["events"]
    add(
        "Kinesis",
        f"shard-hours (raw {size['telemetry-raw']}, telemetry {size['telemetry']}, events 1)",
        shards * h,
        "shard-h",
        shards * h * p("kinesis", "shard_hour"),
    )
    raw_put = msgs * units(w.frame_bytes, p("kinesis", "put_unit_bytes")) / 1e6
    add(
        "Kinesis",
        "PUT units telemetry-raw (one per IoT rule action)",
        raw_put,
        "M units",
        raw_put * p("kinesis", "put_units_per_m"),
    )
    agg_put = msgs / size["frames_per_record"] / 1e6
    add(
        "Kinesis",
        f"PUT units telemetry (aggregated, {size['frames_per_record']} frames/record)",
        agg_put,
        "M units",
        agg_put * p("kinesis", "put_units_per_m"),
    )
    events_put = transitions * 2 / 1e6
    add(
        "Kinesis",
        "PUT units events",
        events_put,
        "M units",
        events_put * p("kinesis", "put_units_per_m"),
    )
    efo_h = size["telemetry"] * h
    add(
        "Kinesis",
        "enhanced fan-out: detector consumer-shard-hours",
        efo_h,
        "h",
        efo_h * p("kinesis", "efo_consumer_shard_hour"),
    )
    add(
        "Kinesis", "enhanced fan-out: detector data", gb, "GB", gb * p("kinesis", "efo_data_per_gb")
    )

    # Fargate: KCL services run one task per shard of the stream they consume.
    tasks = {
        "ingest": size["telemetry-raw"],
        "detector": size["telemetry"],
        "notifier": 1,
        "archiver-telemetry": size["telemetry"],
        "archiver-events": size["events"],
    }
    for name, count in tasks.items():
        vcpu, mem = TASK_SIZES[name]
        spot = name.startswith("archiver")
        cpu_price = p("fargate", "spot_x86_vcpu_hour" if spot else "arm_vcpu_hour")
        mem_price = p("fargate", "spot_x86_gb_hour" if spot else "arm_gb_hour")
        kind = "x86 Spot" if spot else "ARM64"
        add(
            "Fargate",
            f"{name}: {count} x {vcpu} vCPU/{mem} GB {kind}",
            count * h,
            "task-h",
            count * h * (vcpu * cpu_price + mem * mem_price),
        )

    # DynamoDB: KCL lease renewals (every failoverTimeMillis/3 = 3.3 s per lease) dominate.
    leases = tasks["ingest"] + 2 * size["telemetry"] + size["events"]
    lease_writes = leases * h * 3600 / 3.33 / 1e6
    add(
        "DynamoDB",
        f"KCL lease renewals + checkpoints ({leases} leases)",
        lease_writes,
        "M WRU",
        lease_writes * p("dynamodb", "on_demand_write_per_m"),
    )
    workers = sum(v for k, v in tasks.items() if k != "notifier")
    lease_reads = workers * h * 3600 / 20 * 2 / 1e6
    add(
        "DynamoDB",
        "KCL lease table scans",
        lease_reads,
        "M RRU",
        lease_reads * p("dynamodb", "on_demand_read_per_m"),
    )
    alarm_w = transitions * 2 / 1e6
    add(
        "DynamoDB",
        "railpulse-alarms writes",
        alarm_w,
        "M WRU",
        alarm_w * p("dynamodb", "on_demand_write_per_m"),
    )

    # S3 lake (Parquet) at month `lake_months` of the lifecycle.
    lake_gb = gb / a.parquet_compression
    std, ia, gir = lake_gb, 2 * lake_gb, max(0, a.lake_months - 3) * lake_gb
    add("S3", "lake Standard (last 30 days)", std, "GB-month", std * p("s3", "standard_gb_month"))
    add("S3", "lake Standard-IA (30-90 days)", ia, "GB-month", ia * p("s3", "standard_ia_gb_month"))
    add(
        "S3",
        f"lake Glacier IR (to month {a.lake_months})",
        gir,
        "GB-month",
        gir * p("s3", "glacier_ir_gb_month"),
    )
    # Archiver flushes one Parquet object per shard and stream every 5 minutes.
    puts = (size["telemetry"] + size["events"]) * 12 * h
    add(
        "S3",
        "PUT requests (Parquet objects, snapshots)",
        puts / 1e3,
        "k",
        puts / 1e3 * p("s3", "put_per_k"),
    )
    add(
        "S3",
        "lifecycle transitions",
        2 * puts / 1e3,
        "k",
        puts / 1e3 * (p("s3", "transition_ia_per_k") + p("s3", "transition_gir_per_k")),
    )

    # Glue catalog: hourly partitions per table, well inside the free tier.
    glue_req = 2 * 24 * _DAYS * 3 / 1e6
    add(
        "Glue",
        "catalog requests (free tier)",
        glue_req,
        "M",
        max(0.0, glue_req - p("glue", "free_requests_m")) * p("glue", "requests_per_m"),
    )

    # Redshift Serverless
    rpu_h = a.warehouse_base_rpu * a.warehouse_hours_day * _DAYS
    add(
        "Redshift Serverless",
        f"{a.warehouse_base_rpu} RPU x {a.warehouse_hours_day} h/day",
        rpu_h,
        "RPU-h",
        rpu_h * p("redshift", "serverless_rpu_hour"),
    )
    wh_gb = lake_gb * a.warehouse_days / _DAYS
    add(
        "Redshift Serverless",
        f"managed storage ({a.warehouse_days} days)",
        wh_gb,
        "GB-month",
        wh_gb * p("redshift", "managed_storage_gb_month"),
    )

    # VPC interface endpoints: the tasks reach AWS APIs privately, without a NAT gateway.
    ep_h = a.interface_endpoints * a.endpoint_azs * h
    add(
        "VPC",
        f"interface endpoints ({a.interface_endpoints} x {a.endpoint_azs} AZ)",
        ep_h,
        "endpoint-AZ-h",
        ep_h * p("vpc", "interface_endpoint_az_hour"),
    )
    # Kinesis bytes through the endpoints: ingest reads raw and writes telemetry, the detector
    # and archiver read telemetry.
    ep_gb = 4 * gb
    add(
        "VPC", "endpoint data processed", ep_gb, "GB", ep_gb * p("vpc", "interface_endpoint_per_gb")
    )

    # CloudWatch
    n_tasks = sum(tasks.values())
    log_gb = n_tasks * a.log_gb_per_task_day * _DAYS
    add(
        "CloudWatch",
        "logs ingested (incl. EMF)",
        log_gb,
        "GB",
        log_gb * (p("cloudwatch", "logs_ingest_per_gb") + p("cloudwatch", "logs_storage_gb_month")),
    )
    add(
        "CloudWatch",
        "custom metrics (EMF + OpenShardCount)",
        a.custom_metrics,
        "metrics",
        a.custom_metrics * p("cloudwatch", "custom_metric_month"),
    )
    add(
        "CloudWatch",
        "alarms",
        a.alarms,
        "alarms",
        a.alarms * p("cloudwatch", "alarm_standard_month"),
    )
    add("CloudWatch", "dashboard", 1, "dashboard", p("cloudwatch", "dashboard_month"))
    gauge_puts = 60 * 24 * _DAYS
    add(
        "CloudWatch",
        "shard gauge PutMetricData (1/min)",
        gauge_puts / 1e3,
        "k",
        gauge_puts / 1e3 * p("cloudwatch", "put_metric_data_per_k"),
    )

    # KMS: one customer key; Kinesis/SQS/S3 cache data keys (S3 Bucket Keys), so few calls.
    kms_req = (shards * 2 + 6) * 12 * h
    add(
        "KMS",
        "customer key + requests",
        kms_req / 1e4,
        "10k req",
        p("kms", "key_month") + kms_req / 1e4 * p("kms", "requests_per_10k"),
    )
    add("ECR", "4 images", 1.2, "GB-month", 1.2 * p("ecr", "storage_gb_month"))
    return items
