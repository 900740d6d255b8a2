"""A once-a-minute gauge of each stream's open shard count (railpulse/OpenShardCount).

Kinesis publishes no shard-count metric; the KCL services scale on this one to one task per
open shard, so a reshard is followed within minutes by the right number of tasks.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.lint import lint_exception

__all__ = ["GAUGE_CODE", "build_shard_gauge"]

GAUGE_CODE = """
import os
import boto3

kinesis = boto3.client("kinesis")
cloudwatch = boto3.client("cloudwatch")


def handler(event, context):
    data = []
    for name in os.environ["STREAMS"].split(","):
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        data.append({
            "MetricName": "OpenShardCount",
            "Dimensions": [{"Name": "StreamName", "Value": name}],
            "Value": summary["OpenShardCount"],
            "Unit": "Count",
        })
    cloudwatch.put_metric_data(Namespace=os.environ["NAMESPACE"], MetricData=data)
    return {"streams": len(data)}
"""


def build_shard_gauge(
    scope: Construct, streams: list[kinesis.IStream], log_retention: logs.RetentionDays
) -> lambda_.Function:
    log_group = logs.LogGroup(
        scope, "ShardGaugeLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
    )
    role = iam.Role(
        scope,
        "ShardGaugeRole",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description="railpulse shard gauge: read shard counts, publish one metric",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["kinesis:DescribeStreamSummary"], resources=[s.stream_arn for s in streams]
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": names.METRICS_NAMESPACE}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[f"{log_group.log_group_arn}"],
        )
    )
    fn = lambda_.Function(
        scope,
        "ShardGauge",
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        handler="index.handler",
        code=lambda_.Code.from_inline(GAUGE_CODE),
        timeout=Duration.seconds(30),
        memory_size=128,
        role=role,
        log_group=log_group,
        reserved_concurrent_executions=1,
        environment={
            "STREAMS": ",".join(s.stream_name for s in streams),
            "NAMESPACE": names.METRICS_NAMESPACE,
        },
        description="railpulse: publish each stream's OpenShardCount every minute",
    )
    lint_exception(
        fn, "W3005", "CDK adds an explicit DependsOn on the role the function also references."
    )
    events.Rule(
        scope,
        "ShardGaugeSchedule",
        schedule=events.Schedule.rate(Duration.minutes(1)),
        targets=[targets.LambdaFunction(fn, retry_attempts=0)],
    )
    return fn
