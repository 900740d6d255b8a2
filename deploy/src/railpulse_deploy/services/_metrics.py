"""The CloudWatch metrics the alarms, the scaling policies and the dashboard share.

Service metrics (EMF, namespace `railpulse`, dimension `service`) are the contract with
railpulse_shared's metrics module: RecordsSucceeded and RecordsFailed per batch, and the
ingest's SilentTrains (trains whose last frame is older than their expected gap).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

from railpulse_deploy import names

__all__ = [
    "efo_lag",
    "error_rate",
    "iterator_age",
    "open_shards",
    "queue_age",
    "queue_depth",
    "service_metric",
    "stream_metric",
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
    service: str, name: str, statistic: str = "Sum", period: Duration = _FIVE_MIN
) -> cw.Metric:
    return cw.Metric(
        namespace=names.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service},
        statistic=statistic,
        period=period,
    )


def stream_metric(
    service: str, stream: str, name: str, statistic: str = "Sum", period: Duration = _FIVE_MIN
) -> cw.Metric:
    """A metric of a KCL consumer (or the archiver's warehouse loads): railpulse_shared's Metrics
    there carry both dimensions, `service` and `stream`."""
    return cw.Metric(
        namespace=names.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service, "stream": stream},
        statistic=statistic,
        period=period,
    )


def error_rate(service: str) -> cw.MathExpression:
    """Failed records as a percentage of all records, per 5 minutes."""
    f, ok = f"failed_{service}", f"ok_{service}"  # ids are unique per graph, so per service
    return cw.MathExpression(
        expression=f"IF(FILL({f}, 0) + FILL({ok}, 0) > 0, 100 * FILL({f}, 0) / (FILL({f}, 0) + FILL({ok}, 0)), 0)",
        using_metrics={
            f: service_metric(service, "RecordsFailed"),
            ok: service_metric(service, "RecordsSucceeded"),
        },
        label=f"{service} error rate (%)",
        period=Duration.minutes(5),
    )
