"""Notifier: SQS `alerts` -> device shadow (desired state), alarm lifecycle in DynamoDB,
alert events on Kinesis `events`. Scales on the age of the oldest alert."""

from __future__ import annotations

from aws_cdk import Duration, Environment, RemovalPolicy
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.core import CoreRefs
from railpulse_deploy.services import _metrics as m
from railpulse_deploy.services import _policy as p
from railpulse_deploy.services._base import Consumer, ServiceStack

__all__ = ["NotifierStack"]


class NotifierStack(ServiceStack):
    service = "notifier"

    def __init__(
        self, scope: Construct, construct_id: str, refs: CoreRefs, *, env: Environment | None = None
    ) -> None:
        super().__init__(scope, construct_id, refs, env=env)
        r = self.refs
        # The notifier owns its alarm table: one item per (train, alarm), with its lifecycle.
        table = dynamodb.TableV2(
            self,
            "Alarms",
            table_name=names.TABLE_ALARMS,
            partition_key=dynamodb.Attribute(name="train_id", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="alarm_id", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(r.key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.grant(
            p.sqs_consume(self.queue(names.QUEUE_ALERTS)),
            p.kinesis_write(self.stream(names.STREAM_EVENTS)),
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                    "dynamodb:ConditionCheckItem",
                ],
                resources=[table.table_arn],
            ),
            iam.PolicyStatement(
                actions=["iot:UpdateThingShadow", "iot:GetThingShadow"],
                resources=[self.format_arn(service="iot", resource="thing", resource_name="*")],
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[r.key.key_arn],
            ),
        )
        service = self.add_consumer(Consumer("notifier"))
        target = service.auto_scale_task_count(
            min_capacity=1, max_capacity=r.cfg.notifier_max_tasks
        )
        # Alerts must reach the train within seconds: add tasks as soon as one waits 10 s.
        target.scale_on_metric(
            "OldestAlertAge",
            metric=m.queue_age(names.QUEUE_ALERTS),
            scaling_steps=[
                appscaling.ScalingInterval(upper=2, change=-1),
                appscaling.ScalingInterval(lower=10, upper=60, change=+1),
                appscaling.ScalingInterval(lower=60, change=+2),
            ],
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(1),
        )

        self.alarm(
            "oldest-alert-age",
            m.queue_age(names.QUEUE_ALERTS),
            30,
            3,
            "An alert has waited more than 30 s in `alerts`: trains are told late.",
            "iterator-age",
        )
        self.alarm(
            "alerts-dlq-depth",
            m.queue_depth(names.QUEUE_ALERTS_DLQ),
            0,
            1,
            "Alerts failed 5 deliveries and sit in alerts-dlq: some train was not told.",
            "dead-letter-depth",
        )
        self.error_rate_alarm()
