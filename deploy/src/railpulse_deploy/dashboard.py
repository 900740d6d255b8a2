"""The `railpulse` CloudWatch dashboard the runbooks point to: one row per question an SRE
asks (are we keeping up? is anything failing? is every train talking?)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Environment, Stack
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.services import _metrics as m
from railpulse_shared import metric_names as mn

__all__ = ["DASHBOARD", "DashboardStack"]

DASHBOARD = "railpulse"
_STREAMS = (names.STREAM_RAW, names.STREAM_TELEMETRY, names.STREAM_EVENTS)
_ECS = ("ingest", "detector", "notifier", "archiver-telemetry", "archiver-events")


def _graph(title: str, metrics: Sequence[cw.IMetric], width: int = 8) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=metrics, width=width, height=6)


class DashboardStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, env: Environment | None = None
    ) -> None:
        super().__init__(scope, construct_id, description="railpulse dashboard", env=env)
        incoming = [
            cw.Metric(
                namespace="AWS/Kinesis",
                metric_name="IncomingRecords",
                dimensions_map={"StreamName": s},
                statistic="Sum",
                period=Duration.minutes(1),
            )
            for s in _STREAMS
        ]
        tasks = [
            cw.Metric(
                namespace="ECS/ContainerInsights",
                metric_name="RunningTaskCount",
                dimensions_map={"ClusterName": "railpulse", "ServiceName": f"railpulse-{s}"},
                statistic="Average",
                period=Duration.minutes(1),
            )
            for s in _ECS
        ]
        dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=DASHBOARD, default_interval=Duration.hours(3)
        )
        dashboard.add_widgets(
            cw.TextWidget(
                markdown="# railpulse\nRunbooks: `docs/runbooks/` (one per alarm).",
                width=24,
                height=1,
            )
        )
        dashboard.add_widgets(
            _graph("Records in (per minute)", list(incoming)),
            _graph("Open shards", [m.open_shards(s) for s in _STREAMS]),
            _graph("Running tasks (one per shard)", list(tasks)),
        )
        dashboard.add_widgets(
            _graph(
                "Consumer lag: iterator age (ms)",
                [m.iterator_age(s) for s in _STREAMS]
                + [m.efo_lag(names.STREAM_TELEMETRY, "railpulse-detector")],
            ),
            _graph("Oldest alert (s)", [m.queue_age(names.QUEUE_ALERTS)]),
            _graph(
                "Dead letters",
                [
                    m.queue_depth(q)
                    for q in (names.QUEUE_REJECTS, names.QUEUE_REJECTS_DLQ, names.QUEUE_ALERTS_DLQ)
                ],
            ),
        )
        consumers = [(s, st) for s, streams in names.SERVICE_STREAMS.items() for st in streams]
        kcl = [(s, st) for s, st in consumers if st is not None]
        dashboard.add_widgets(
            _graph("Error rate (%)", [m.error_rate(s, st) for s, st in consumers], width=12),
            _graph(
                "Silent trains (worst shard)",
                [m.service_metric("ingest", mn.SILENT_TRAINS, names.STREAM_RAW, "Maximum")],
                width=12,
            ),
        )
        dashboard.add_widgets(
            _graph(
                "Records dead-lettered by consumers",
                [m.service_metric(s, mn.RECORDS_DEAD_LETTERED, st) for s, st in kcl],
            ),
            _graph(
                "Frames with skewed clocks",
                [m.service_metric("ingest", mn.FRAMES_CLOCK_SKEWED, names.STREAM_RAW)],
            ),
            _graph(
                "Detector snapshots failed / model states dropped",
                [
                    m.service_metric("detector", name, names.STREAM_TELEMETRY)
                    for name in (mn.SNAPSHOTS_FAILED, mn.MODEL_STATES_DROPPED)
                ],
            ),
        )
        dashboard.add_widgets(
            _graph(
                "Warehouse objects set aside",
                [
                    m.service_metric(
                        "archiver", mn.WAREHOUSE_OBJECTS_SET_ASIDE, mn.WAREHOUSE_STREAM, "Maximum"
                    )
                ],
                width=12,
            ),
        )
