"""CoreStack: composes the shared resources and exposes them to the service stacks."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kms as kms
from aws_cdk import aws_redshiftserverless as rss
from aws_cdk import aws_sns as sns
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.config import DeployConfig, retention
from railpulse_deploy.core.catalog import build_catalog
from railpulse_deploy.core.data import build_data
from railpulse_deploy.core.gauge import build_shard_gauge
from railpulse_deploy.core.iot import build_iot
from railpulse_deploy.core.network import build_network
from railpulse_deploy.nag import acknowledge_core

__all__ = ["CoreRefs", "CoreStack"]


@dataclass(frozen=True)
class CoreRefs:
    """What a service stack takes from the core as construct references (CloudFormation
    exports). Streams, queues and buckets are not here: service stacks name them by their
    fixed names (railpulse_deploy.names), so they stay deployable on their own."""

    cfg: DeployConfig
    key: kms.IKey
    alarm_topic: sns.ITopic
    vpc: ec2.IVpc
    task_subnets: ec2.SubnetSelection
    task_sg: ec2.ISecurityGroup
    cluster: ecs.ICluster
    warehouse: rss.CfnWorkgroup
    warehouse_copy_role_arn: str


class CoreStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        cfg: DeployConfig,
        *,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="railpulse core: key, streams, queues, lake, catalog, warehouse, IoT, network",
            env=env,
        )
        data = build_data(self, cfg)
        net = build_network(self, cfg.region, cfg.iot_data_endpoint, data.access_logs)
        catalog = build_catalog(
            self, cfg, data.key, data.lake, net.vpc, net.warehouse_subnets, net.task_sg
        )
        build_iot(self, data.streams[names.STREAM_RAW], data.lake)
        build_shard_gauge(self, list(data.streams.values()), retention(cfg.log_retention_days))
        acknowledge_core(self)
        self.refs = CoreRefs(
            cfg=cfg,
            key=data.key,
            alarm_topic=data.alarm_topic,
            vpc=net.vpc,
            task_subnets=net.task_subnets,
            task_sg=net.task_sg,
            cluster=net.cluster,
            warehouse=catalog.workgroup,
            warehouse_copy_role_arn=catalog.copy_role.role_arn,
        )
