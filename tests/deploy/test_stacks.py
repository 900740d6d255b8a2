"""The synthesised stacks: encryption everywhere, the network, IoT, services and alarms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from deploy_synth import Synth, render

from railpulse_archiver.tables import TABLES
from railpulse_deploy import names

SERVICE_STACKS = {
    "RailpulseIngest": "ingest",
    "RailpulseDetector": "detector",
    "RailpulseNotifier": "notifier",
    "RailpulseArchiver": "archiver",
}
ENV_CONTRACT = {
    "AWS_REGION",
    "RAILPULSE_STREAM_RAW",
    "RAILPULSE_STREAM_TELEMETRY",
    "RAILPULSE_STREAM_EVENTS",
    "RAILPULSE_QUEUE_ALERTS",
    "RAILPULSE_QUEUE_REJECTS",
    "RAILPULSE_BUCKET_LAKE",
    "RAILPULSE_BUCKET_STATE",
    "RAILPULSE_ALARM_TABLE",
    "RAILPULSE_GLUE_DATABASE",
    "RAILPULSE_IOT_DATA_ENDPOINT",
    "RAILPULSE_LOG_LEVEL",
}


def template(synth: Synth, stack: str) -> Template:
    return Template.from_json(synth.templates[stack])


def test_every_stack_synthesises(synth: Synth) -> None:
    assert set(synth.templates) == {"RailpulseCore", "RailpulseDashboard", *SERVICE_STACKS}
    for name, tpl in synth.templates.items():
        assert tpl["Resources"], name


# -- encryption -------------------------------------------------------------------------------


def test_every_stream_is_encrypted(synth: Synth) -> None:
    streams = synth.all_resources("AWS::Kinesis::Stream")
    assert {s["Properties"]["Name"] for s in streams.values()} == {
        names.STREAM_RAW,
        names.STREAM_TELEMETRY,
        names.STREAM_EVENTS,
    }
    for s in streams.values():
        assert s["Properties"]["StreamEncryption"]["EncryptionType"] == "KMS"


def test_every_queue_is_encrypted_with_the_key_and_has_a_dlq(synth: Synth) -> None:
    queues = synth.all_resources("AWS::SQS::Queue")
    by_name = {q["Properties"]["QueueName"]: q["Properties"] for q in queues.values()}
    assert set(by_name) == {
        names.QUEUE_ALERTS,
        names.QUEUE_ALERTS_DLQ,
        names.QUEUE_REJECTS,
        names.QUEUE_REJECTS_DLQ,
    }
    for props in by_name.values():
        assert "KmsMasterKeyId" in props
    for queue in (names.QUEUE_ALERTS, names.QUEUE_REJECTS):
        assert by_name[queue]["RedrivePolicy"]["maxReceiveCount"] == 5
    core = template(synth, "RailpulseCore")
    core.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_every_table_is_encrypted_with_the_key(synth: Synth) -> None:
    tables = synth.all_resources("AWS::DynamoDB::GlobalTable")
    assert {t["Properties"]["TableName"] for t in tables.values()} == {
        names.TABLE_ALARMS,
        *names.KCL_APPS,
    }
    for t in tables.values():
        sse = t["Properties"]["SSESpecification"]
        assert sse["SSEEnabled"] is True and sse["SSEType"] == "KMS"
        for replica in t["Properties"]["Replicas"]:
            assert "KMSMasterKeyId" in replica["SSESpecification"]
            assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_every_bucket_is_encrypted_private_and_tls_only(synth: Synth) -> None:
    buckets = synth.resources("RailpulseCore", "AWS::S3::Bucket")
    assert {b["Properties"]["BucketName"] for b in buckets.values()} == {
        names.BUCKET_LAKE,
        names.BUCKET_STATE,
        names.BUCKET_LOGS,
    }
    policies = synth.resources("RailpulseCore", "AWS::S3::BucketPolicy")
    for logical, b in buckets.items():
        props = b["Properties"]
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]
        # Access logs: S3 log delivery writes SSE-S3 only; data buckets use the railpulse key.
        expected = "AES256" if props["BucketName"] == names.BUCKET_LOGS else "aws:kms"
        assert rule["SSEAlgorithm"] == expected
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["LifecycleConfiguration"]["Rules"]
        denies_plain_http = [
            st
            for p in policies.values()
            if p["Properties"]["Bucket"] == {"Ref": logical}
            for st in p["Properties"]["PolicyDocument"]["Statement"]
            if st["Effect"] == "Deny"
            and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies_plain_http, props["BucketName"]


def test_lake_lifecycle_tiers_then_expires(synth: Synth) -> None:
    lake = next(
        b
        for b in synth.resources("RailpulseCore", "AWS::S3::Bucket").values()
        if b["Properties"]["BucketName"] == names.BUCKET_LAKE
    )
    rules = {r["Id"]: r for r in lake["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert [t["StorageClass"] for t in rules["tiering"]["Transitions"]] == [
        "STANDARD_IA",
        "GLACIER_IR",
    ]
    assert rules["tiering"]["ExpirationInDays"] == 1095


def test_key_rotates_and_topic_warehouse_are_encrypted(synth: Synth) -> None:
    core = template(synth, "RailpulseCore")
    core.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    core.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    core.has_resource_properties(
        "AWS::RedshiftServerless::Namespace",
        {"KmsKeyId": Match.any_value(), "ManageAdminPassword": True},
    )
    core.has_resource_properties(
        "AWS::RedshiftServerless::Workgroup",
        {
            "PubliclyAccessible": False,
            "EnhancedVpcRouting": True,
            "BaseCapacity": 4,
        },
    )


# -- share ------------------------------------------------------------------------------------


def test_glue_database_and_partitioned_parquet_tables(synth: Synth) -> None:
    core = template(synth, "RailpulseCore")
    core.has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": {"Name": names.GLUE_DATABASE}}
    )
    # The archiver's own table definitions are the one source of the catalogue's tables.
    for table in TABLES.values():
        core.has_resource_properties(
            "AWS::Glue::Table",
            {
                "DatabaseName": names.GLUE_DATABASE,
                "TableInput": {
                    "Name": table.name,
                    "PartitionKeys": [{"Name": k, "Type": "string"} for k in table.partition_keys],
                    "Parameters": {"classification": "parquet"},
                    "StorageDescriptor": {
                        "Columns": [
                            {"Name": c["Name"], "Type": c["Type"]} for c in table.glue_columns()
                        ]
                    },
                },
            },
        )


# -- network ----------------------------------------------------------------------------------


def test_private_network_with_endpoints_and_no_internet(synth: Synth) -> None:
    core = synth.templates["RailpulseCore"]["Resources"]
    kinds = {v["Type"] for v in core.values()}
    assert "AWS::EC2::NatGateway" not in kinds and "AWS::EC2::InternetGateway" not in kinds
    services = {
        str(v["Properties"]["ServiceName"])
        for v in core.values()
        if v["Type"] == "AWS::EC2::VPCEndpoint"
    }
    for svc in (
        "kinesis-streams",
        "sqs",
        "ecr.api",
        "ecr.dkr",
        "logs",
        "glue",
        "iot.data",
        "redshift-serverless",
        "s3",
        "dynamodb",
    ):
        assert any(s.endswith(f".{svc}") or f".{svc}'" in s or f'.{svc}"' in s for s in services), (
            svc
        )
    subnets = [v for v in core.values() if v["Type"] == "AWS::EC2::Subnet"]
    assert len(subnets) == 3 and all(
        s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets
    )


# -- IoT --------------------------------------------------------------------------------------


def _iot_policy(synth: Synth) -> dict[str, Any]:
    (policy,) = synth.resources("RailpulseCore", "AWS::IoT::Policy").values()
    return policy["Properties"]["PolicyDocument"]


def test_iot_policy_is_scoped_per_thing(synth: Synth) -> None:
    thing = "${iot:Connection.Thing.ThingName}"
    statements = {s["Action"]: s for s in _iot_policy(synth)["Statement"]}
    assert set(statements) == {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}
    connect = statements["iot:Connect"]
    assert render(connect["Resource"]).endswith(f":client/{thing}")
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    for action in ("iot:Publish", "iot:Subscribe", "iot:Receive"):
        for resource in map(render, statements[action]["Resource"]):
            # Every topic a train may touch carries its own thing name; nothing fleet-wide.
            assert f"/{thing}/" in resource, resource
            assert "+" not in resource and "#" not in resource
    publish = [render(r) for r in statements["iot:Publish"]["Resource"]]
    assert any(f"$aws/rules/{names.TOPIC_RULE_TELEMETRY}/trains/{thing}/" in r for r in publish)
    assert any(f"$aws/things/{thing}/shadow/" in r for r in publish)


def test_topic_rules_route_to_raw_stream_with_error_action(synth: Synth) -> None:
    rules = synth.resources("RailpulseCore", "AWS::IoT::TopicRule")
    by_name = {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"] for r in rules.values()
    }
    assert set(by_name) == {names.TOPIC_RULE_TELEMETRY, names.TOPIC_RULE_SENSORS}
    telemetry = by_name[names.TOPIC_RULE_TELEMETRY]
    assert "'trains/+/telemetry'" in telemetry["Sql"]
    (action,) = telemetry["Actions"]
    assert action["Kinesis"]["PartitionKey"] == "${clientid()}"  # one train, one shard, in order
    for payload in by_name.values():
        assert payload["ErrorAction"]["S3"]["Key"].startswith("iot-errors/")
    template(synth, "RailpulseCore").has_resource_properties(
        "AWS::IoT::ThingType", {"ThingTypeName": names.THING_TYPE}
    )


def test_deployed_topic_rules_are_the_ones_the_local_stand_in_runs(synth: Synth) -> None:
    """The SQL and partition key in the synthesised template are, byte for byte, what the
    stand-in compiles and runs; run on a message, the template's own SQL yields the envelope
    ingest decodes, with the client id (= the thing) as the principal."""
    from railpulse_devstack.iot.rules import Rules
    from railpulse_devstack.iot.sql import Message, compile_sql, compile_template
    from railpulse_ingest.decode import decode_envelope
    from railpulse_shared.topic_rules import SQL_VERSION, TOPIC_RULES

    deployed = {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]
        for r in synth.resources("RailpulseCore", "AWS::IoT::TopicRule").values()
    }
    stand_in = {r.spec.name: r for r in Rules(TOPIC_RULES).rules}
    assert set(deployed) == set(stand_in)
    for name, payload in deployed.items():
        assert payload["Sql"] == stand_in[name].sql.sql
        assert payload["AwsIotSqlVersion"] == SQL_VERSION
        (action,) = payload["Actions"]
        assert action["Kinesis"]["PartitionKey"] == stand_in[name].partition_key.text

    sql = compile_sql(deployed[names.TOPIC_RULE_TELEMETRY]["Sql"])
    key = compile_template(
        deployed[names.TOPIC_RULE_TELEMETRY]["Actions"][0]["Kinesis"]["PartitionKey"]
    )
    message = Message(
        "trains/train-007/telemetry", b"\x00not json\xff", "train-007", 1_764_000_000_123
    )
    envelope = decode_envelope(sql.output(message))
    assert (envelope.topic, envelope.principal, envelope.received_ms, envelope.payload) == (
        "trains/train-007/telemetry",
        "train-007",
        1_764_000_000_123,
        b"\x00not json\xff",
    )
    assert key.render(message) == "train-007"


# -- services ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "service"), SERVICE_STACKS.items())
def test_service_task_definitions(synth: Synth, stack: str, service: str) -> None:
    tasks = synth.resources(stack, "AWS::ECS::TaskDefinition")
    assert tasks
    for task in tasks.values():
        props = task["Properties"]
        assert props["RequiresCompatibilities"] == ["FARGATE"]
        arch = props["RuntimePlatform"]["CpuArchitecture"]
        assert arch == ("X86_64" if service == "archiver" else "ARM64")  # Spot has no ARM64
        containers = {c["Name"]: c for c in props["ContainerDefinitions"]}
        container = containers.pop("app")
        assert container["ReadonlyRootFilesystem"] is True
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        values = {e["Name"]: e.get("Value") for e in container["Environment"]}
        assert set(values) >= ENV_CONTRACT
        if "RAILPULSE_KCL_RETRIEVAL_MODE" in values:
            # KCL processors' EMF goes to the CloudWatch agent sidecar, started first.
            (agent,) = containers.values()
            assert agent["Name"] == "cloudwatch-agent" and agent["Essential"] is True
            assert agent["Image"].startswith("public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.")
            agent_env = {e["Name"]: e["Value"] for e in agent["Environment"]}
            assert json.loads(agent_env["CW_CONFIG_CONTENT"])["logs"]["metrics_collected"] == {
                "emf": {}
            }
            assert values["RAILPULSE_METRICS_SINK"] == "tcp://127.0.0.1:25888"
            assert container["DependsOn"] == [
                {"ContainerName": "cloudwatch-agent", "Condition": "START"}
            ]
        else:
            assert not containers, containers  # the warehouse load writes EMF to stdout
    (group,) = synth.resources(stack, "AWS::Logs::LogGroup").values()
    assert group["Properties"]["LogGroupName"] == f"/railpulse/{service}"


def test_archiver_runs_on_spot_and_others_on_demand(synth: Synth) -> None:
    for stack, service in SERVICE_STACKS.items():
        for svc in synth.resources(stack, "AWS::ECS::Service").values():
            (strategy,) = svc["Properties"]["CapacityProviderStrategy"]
            expected = "FARGATE_SPOT" if service == "archiver" else "FARGATE"
            assert strategy["CapacityProvider"] == expected
            assert (
                svc["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"]
                == "DISABLED"
            )


def test_detector_has_an_enhanced_fan_out_consumer(synth: Synth) -> None:
    det = template(synth, "RailpulseDetector")
    det.has_resource_properties(
        "AWS::Kinesis::StreamConsumer", {"ConsumerName": "railpulse-detector"}
    )
    det.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Name": "app",
                            "Environment": Match.array_with(
                                [{"Name": "RAILPULSE_KCL_RETRIEVAL_MODE", "Value": "FANOUT"}]
                            ),
                        }
                    )
                ]
            )
        },
    )
    for stack in ("RailpulseIngest", "RailpulseArchiver"):
        assert not synth.resources(stack, "AWS::Kinesis::StreamConsumer")


def test_task_roles_only_name_their_own_resources(synth: Synth) -> None:
    def actions(stack: str) -> set[str]:
        found: set[str] = set()
        for p in synth.resources(stack, "AWS::IAM::Policy").values():
            if "TaskRole" not in str(p["Properties"]["Roles"]):
                continue
            for st in p["Properties"]["PolicyDocument"]["Statement"]:
                found |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        return found

    assert "iot:UpdateThingShadow" in actions("RailpulseNotifier")
    assert not any(
        a.startswith("iot:")
        for s in ("RailpulseIngest", "RailpulseDetector", "RailpulseArchiver")
        for a in actions(s)
    )
    assert "redshift-serverless:GetCredentials" in actions("RailpulseArchiver")
    assert "kinesis:SubscribeToShard" in actions("RailpulseDetector")
    assert not any(
        a.startswith(("cloudwatch:", "dynamodb:CreateTable"))
        for s in SERVICE_STACKS
        for a in actions(s)
    )
