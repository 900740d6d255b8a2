"""Collect: the train thing type, the per-thing policy and the topic rules into Kinesis.

A train authenticates with its X.509 certificate, attached to a thing of its own name. The
policy names only `${iot:Connection.Thing.ThingName}`, so a train connects as itself and
publishes and subscribes to its own topics and its own shadow, nothing else.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_s3 as s3
from constructs import Construct

from railpulse_deploy import names
from railpulse_shared.topic_rules import SQL_VERSION, TOPIC_RULES

__all__ = ["THING", "build_iot", "train_policy_document"]

THING = "${iot:Connection.Thing.ThingName}"
_ERRORS_PREFIX = "iot-errors"


def train_policy_document(partition: str, region: str, account: str) -> dict[str, Any]:
    arn = f"arn:{partition}:iot:{region}:{account}"
    own_topics = [
        f"{arn}:topic/trains/{THING}/*",
        f"{arn}:topic/$aws/rules/{names.TOPIC_RULE_TELEMETRY}/trains/{THING}/*",
        f"{arn}:topic/$aws/things/{THING}/shadow/*",
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{arn}:client/{THING}",
                # The certificate must be attached to the thing the client id names.
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": own_topics},
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [
                    f"{arn}:topicfilter/trains/{THING}/*",
                    f"{arn}:topicfilter/$aws/things/{THING}/shadow/*",
                ],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": [
                    f"{arn}:topic/trains/{THING}/*",
                    f"{arn}:topic/$aws/things/{THING}/shadow/*",
                ],
            },
        ],
    }


def build_iot(scope: Construct, raw: kinesis.IStream, lake: s3.IBucket) -> None:
    stack = Stack.of(scope)
    iot.CfnThingType(
        scope,
        "TrainThingType",
        thing_type_name=names.THING_TYPE,
        thing_type_properties=iot.CfnThingType.ThingTypePropertiesProperty(
            thing_type_description="A railpulse train (edge agent)",
            searchable_attributes=["fleet", "line", "model"],
        ),
    )
    iot.CfnPolicy(
        scope,
        "TrainPolicy",
        policy_name="railpulse-train",
        policy_document=train_policy_document(stack.partition, stack.region, stack.account),
    )

    role = iam.Role(
        scope,
        "TopicRuleRole",
        assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
        description="railpulse topic rules: into telemetry-raw; failures into the lake",
    )
    role.add_to_policy(
        iam.PolicyStatement(actions=["kinesis:PutRecord"], resources=[raw.stream_arn])
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[lake.arn_for_objects(f"{_ERRORS_PREFIX}/*")]
        )
    )

    # Failed deliveries keep the message (base64 in the error document) under iot-errors/.
    error_action = iot.CfnTopicRule.ActionProperty(
        s3=iot.CfnTopicRule.S3ActionProperty(
            bucket_name=lake.bucket_name,
            role_arn=role.role_arn,
            key=f"{_ERRORS_PREFIX}/${{topic()}}/${{timestamp()}}-${{newuuid()}}.json",
        )
    )
    # The rules the local stand-in runs too (railpulse_shared.topic_rules): trains on
    # `trains/<thing>/telemetry` or Basic Ingest (no messaging charge)
    # `$aws/rules/railpulse_telemetry/trains/<thing>/telemetry`, generic sensors on `iot/sensors`;
    # each message becomes a RuleEnvelope keyed by the client id (= the thing, by the policy).
    for rule in TOPIC_RULES:
        iot.CfnTopicRule(
            scope,
            f"Rule{rule.name.title().replace('_', '')}",
            rule_name=rule.name,
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                sql=rule.sql,
                aws_iot_sql_version=SQL_VERSION,
                rule_disabled=False,
                actions=[
                    iot.CfnTopicRule.ActionProperty(
                        kinesis=iot.CfnTopicRule.KinesisActionProperty(
                            stream_name=raw.stream_name,
                            partition_key=rule.partition_key,
                            role_arn=role.role_arn,
                        )
                    )
                ],
                error_action=error_action,
            ),
        )
