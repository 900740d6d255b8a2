"""The CloudWatch metrics the alarms, the scaling policies and the dashboard share.

Service metrics (EMF, namespace `railpulse`) come from railpulse_shared.metric_names, the one
list of what the services emit (names, dimensions, owners); `service_metric` refuses anything
else. AWS metrics (Kinesis, SQS) and the core's shard gauge are named here.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

from railpulse_deploy import names
from railpulse_shared import metric_names as mn

__all__ = [
    "efo_lag",
    "error_rate",
    "iterator_age",
    "open_shards",
    "queue_age",
    "queue_depth",
    "service_metric",
]

_MIN = Duration.minutes(1)
_FIVE_MIN = Duration.minutes(5)


def open_shards(stream: str) -> cw.Metric:
    return cw.Metric(
        namespace=names.METRICS_NAMESPACE,
        metric_name="OpenShardCount",
        dimensions_map={"StreamName": stream},
        statistic="Maximum",
        period=_MIN,
    )


def iterator_age(stream: str) -> cw.Metric:
    """Polling consumers' lag (the stream's GetRecords iterator age, worst shard)."""
    return cw.Metric(
        namespace="AWS/Kinesis",
        metric_name="GetRecords.IteratorAgeMilliseconds",
        dimensions_map={"StreamName": stream},
        statistic="Maximum",
        period=_MIN,
    )


def efo_lag(stream: str, consumer: str) -> cw.Metric:
    """An enhanced fan-out consumer's lag."""
    return cw.Metric(
        namespace="AWS/Kinesis",
        metric_name="SubscribeToShardEvent.MillisBehindLatest",
        dimensions_map={"StreamName": stream, "ConsumerName": consumer},
        statistic="Maximum",
        period=_MIN,
    )


def queue_depth(queue: str) -> cw.Metric:
    return cw.Metric(
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions_map={"QueueName": queue},
        statistic="Maximum",
        period=_MIN,
    )


def queue_age(queue: str) -> cw.Metric:
    return cw.Metric(
        namespace="AWS/SQS",
        metric_name="ApproximateAgeOfOldestMessage",
        dimensions_map={"QueueName": queue},
        statistic="Maximum",
        period=_MIN,
    )


def service_metric(
    service: str,
    name: str,
    stream: str | None = None,
    statistic: str = "Sum",
    period: Duration = _FIVE_MIN,
) -> cw.Metric:
    """A service's own metric, as railpulse_shared.metric_names lists it: refused if `service`
    does not own it, and with exactly the dimensions the service emits (`service`, and
    `stream` for the KCL consumers and the warehouse loads)."""
    spec = mn.METRICS[name]
    if service not in spec.owners:
        raise ValueError(f"{name} is emitted by {', '.join(spec.owners)}, not {service}")
    if ("stream" in spec.dimensions) != (stream is not None):
        raise ValueError(f"{name} has the dimensions {spec.dimensions}; stream={stream!r}")
    dims = {"service": service} | ({"stream": stream} if stream is not None else {})
    return cw.Metric(
        namespace=names.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map=dims,
        statistic=statistic,
        period=period,
    )


def error_rate(service: str, stream: str | None = None) -> cw.MathExpression:
    """Failed records as a percentage of the records that came, per 5 minutes (0 when none
    came); which metrics count is railpulse_shared.metric_names.ERROR_RATE's."""
    rate = mn.ERROR_RATE[service]
    suffix = f"{service}_{stream}".replace("-", "_") if stream else service
    f, n = f"failed_{suffix}", f"total_{suffix}"  # ids are unique per graph
    return cw.MathExpression(
        expression=f"IF(FILL({n}, 0) > 0, 100 * FILL({f}, 0) / FILL({n}, 0), 0)",
        using_metrics={
            f: service_metric(service, rate.failed, stream),
            n: service_metric(service, rate.total, stream),
        },
        label=f"{service}{f' {stream}' if stream else ''} error rate (%)",
        period=_FIVE_MIN,
    )
