"""Least-privilege statements, spelled out action by action (CDK's grant helpers add
wildcard actions such as s3:GetObject* and kms:GenerateDataKey*, which we do not want)."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_sqs as sqs

__all__ = [
    "kinesis_read",
    "kinesis_write",
    "lease_table",
    "sqs_consume",
    "sqs_send",
]

# What the KCL 2.5 (polling) needs on the stream it consumes.
_KCL_STREAM = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
]
# What the KCL needs on its lease table (it exists already: the service stack creates it).
_KCL_TABLE = [
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Scan",
    "dynamodb:Query",
]


def kinesis_read(*streams: kinesis.IStream) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=_KCL_STREAM, resources=[s.stream_arn for s in streams])


def kinesis_write(*streams: kinesis.IStream) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["kinesis:PutRecord", "kinesis:PutRecords"],
        resources=[s.stream_arn for s in streams],
    )


def lease_table(stack: Stack, *apps: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=_KCL_TABLE,
        resources=[
            stack.format_arn(service="dynamodb", resource="table", resource_name=a) for a in apps
        ],
    )


def sqs_send(*queues: sqs.IQueue) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
        resources=[q.queue_arn for q in queues],
    )


def sqs_consume(*queues: sqs.IQueue) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueUrl",
            "sqs:GetQueueAttributes",
        ],
        resources=[q.queue_arn for q in queues],
    )
