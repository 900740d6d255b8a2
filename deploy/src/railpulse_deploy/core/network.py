"""VPC without internet access: isolated subnets, gateway endpoints for S3 and DynamoDB,
interface endpoints for the other AWS APIs the tasks call, and the ECS cluster."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_s3 as s3
from constructs import Construct

from railpulse_deploy.lint import lint_exception

__all__ = ["Network", "build_network"]

# Interface endpoints: what the tasks call (see each service's task role). Every one costs
# per AZ-hour, so nothing is here that no task uses (no STS: task credentials come from the
# ECS agent; no KMS: Kinesis, SQS, S3 and DynamoDB call KMS themselves; no CloudWatch: metrics
# are EMF in the logs and the KCL runs with metricsLevel=NONE).
_INTERFACE = {
    "Kinesis": ec2.InterfaceVpcEndpointAwsService.KINESIS_STREAMS,
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Glue": ec2.InterfaceVpcEndpointAwsService.GLUE,
    "RedshiftServerless": ec2.InterfaceVpcEndpointAwsService.REDSHIFT_SERVERLESS,
}


@dataclass(frozen=True)
class Network:
    vpc: ec2.Vpc
    task_subnets: ec2.SubnetSelection
    warehouse_subnets: ec2.SubnetSelection
    task_sg: ec2.SecurityGroup
    cluster: ecs.Cluster


def build_network(
    scope: Construct, region: str, iot_data_endpoint: str, flow_logs: s3.IBucket
) -> Network:
    # Redshift Serverless needs subnets in three AZs; the tasks and the interface endpoints use
    # two of them (a third AZ of endpoints would cost more than it protects).
    azs = [f"{region}{suffix}" for suffix in ("a", "b", "c")]
    vpc = ec2.Vpc(
        scope,
        "Vpc",
        ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/20"),
        availability_zones=azs,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(
                name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
            )
        ],
        gateway_endpoints={
            "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
            "DynamoDb": ec2.GatewayVpcEndpointOptions(
                service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
            ),
        },
        restrict_default_security_group=False,  # nothing uses it; avoids a custom-resource Lambda
    )
    vpc.add_flow_log(
        "FlowLogs",
        destination=ec2.FlowLogDestination.to_s3(flow_logs, "vpc-flow-logs/"),
        traffic_type=ec2.FlowLogTrafficType.REJECT,
    )
    for subnet in vpc.isolated_subnets:
        lint_exception(
            subnet,
            "W3010",
            "Redshift Serverless needs three AZs and an environment-agnostic "
            "synth yields two, so the AZs are named from the configured region.",
        )
    task_subnets = ec2.SubnetSelection(
        subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, availability_zones=azs[:2]
    )
    warehouse_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

    task_sg = ec2.SecurityGroup(
        scope,
        "TaskSg",
        vpc=vpc,
        description="railpulse Fargate tasks: no inbound; outbound only inside the VPC and to gateway endpoints",
        allow_all_outbound=True,  # the subnets have no route to the internet
    )
    endpoint_sg = ec2.SecurityGroup(
        scope,
        "EndpointSg",
        vpc=vpc,
        description="railpulse interface endpoints: HTTPS from the tasks",
        allow_all_outbound=False,
    )
    endpoint_sg.add_ingress_rule(task_sg, ec2.Port.tcp(443), "HTTPS from railpulse tasks")
    for name, service in _INTERFACE.items():
        vpc.add_interface_endpoint(
            name,
            service=service,
            subnets=task_subnets,
            security_groups=[endpoint_sg],
            private_dns_enabled=True,
            open=False,
        )

    # IoT data plane: the endpoint has no private DNS of its own; a private zone maps the
    # account's ATS data endpoint name onto it, so the notifier uses the normal hostname.
    iot_data = vpc.add_interface_endpoint(
        "IotData",
        service=ec2.InterfaceVpcEndpointAwsService.IOT_CORE,
        subnets=task_subnets,
        security_groups=[endpoint_sg],
        private_dns_enabled=False,
        open=False,
    )
    zone = route53.PrivateHostedZone(
        scope, "IotDataZone", zone_name=f"iot.{region}.amazonaws.com", vpc=vpc
    )
    route53.ARecord(
        scope,
        "IotDataRecord",
        zone=zone,
        record_name=iot_data_endpoint.split(".")[0],
        target=route53.RecordTarget.from_alias(targets.InterfaceVpcEndpointTarget(iot_data)),
    )

    cluster = ecs.Cluster(
        scope,
        "Cluster",
        cluster_name="railpulse",
        vpc=vpc,
        enable_fargate_capacity_providers=True,
        container_insights_v2=ecs.ContainerInsights.ENABLED,
    )
    return Network(vpc, task_subnets, warehouse_subnets, task_sg, cluster)
