"""Share: the Glue database and tables over the lake, and the Redshift Serverless warehouse
that loads them (COPY ... FORMAT AS PARQUET) and queries them in place (Spectrum)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_redshiftserverless as rss
from aws_cdk import aws_s3 as s3
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.config import DeployConfig

__all__ = ["LAKE_TABLES", "WAREHOUSE_PORT", "Catalog", "build_catalog"]

# A non-default port, as the reference design recommends for the warehouse.
WAREHOUSE_PORT = 5440

# table -> (lake prefix, columns). Partitioned by dt=YYYY-MM-DD/hour=HH, as the archiver writes.
LAKE_TABLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "frames": (
        "frames/",
        [
            ("train_id", "string"),
            ("seq", "bigint"),
            ("ts", "timestamp"),
            ("received_at", "timestamp"),
            ("channels", "map<string,double>"),
        ],
    ),
    "events": (
        "events/",
        [
            ("event_id", "string"),
            ("kind", "string"),
            ("train_id", "string"),
            ("ts", "timestamp"),
            ("score", "double"),
            ("channel", "string"),
            ("detail", "string"),
        ],
    ),
}


@dataclass(frozen=True)
class Catalog:
    database: glue.CfnDatabase
    workgroup: rss.CfnWorkgroup
    warehouse_sg: ec2.SecurityGroup
    copy_role: iam.Role


def build_catalog(
    scope: Construct,
    cfg: DeployConfig,
    key: kms.IKey,
    lake: s3.IBucket,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    task_sg: ec2.ISecurityGroup,
) -> Catalog:
    stack = Stack.of(scope)
    database = glue.CfnDatabase(
        scope,
        "GlueDatabase",
        catalog_id=stack.account,
        database_input=glue.CfnDatabase.DatabaseInputProperty(
            name=names.GLUE_DATABASE, description="railpulse lake"
        ),
    )
    for table, (prefix, columns) in LAKE_TABLES.items():
        t = glue.CfnTable(
            scope,
            f"GlueTable{table.title()}",
            catalog_id=stack.account,
            database_name=names.GLUE_DATABASE,
            table_input=glue.CfnTable.TableInputProperty(
                name=table,
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "parquet", "EXTERNAL": "TRUE"},
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name="dt", type="string"),
                    glue.CfnTable.ColumnProperty(name="hour", type="string"),
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=f"s3://{lake.bucket_name}/{prefix}",
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=ty) for n, ty in columns],
                    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    ),
                ),
            ),
        )
        t.add_resource_dependency(database)

    # The role the warehouse assumes for COPY FROM S3 and Spectrum: read the lake, nothing else.
    copy_role = iam.Role(
        scope,
        "WarehouseCopyRole",
        assumed_by=iam.CompositePrincipal(
            iam.ServicePrincipal("redshift.amazonaws.com"),
            iam.ServicePrincipal("redshift-serverless.amazonaws.com"),
        ),
        description="Redshift Serverless: COPY and Spectrum over the railpulse lake",
    )
    copy_role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[lake.arn_for_objects(f"{p}*") for p, _ in LAKE_TABLES.values()],
        )
    )
    copy_role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket", "s3:GetBucketLocation"], resources=[lake.bucket_arn]
        )
    )
    copy_role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn]))
    glue_arn = f"arn:{stack.partition}:glue:{stack.region}:{stack.account}"
    copy_role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetTables",
                "glue:GetPartition",
                "glue:GetPartitions",
            ],
            resources=[f"{glue_arn}:catalog", f"{glue_arn}:database/{names.GLUE_DATABASE}"]
            + [f"{glue_arn}:table/{names.GLUE_DATABASE}/{t}" for t in LAKE_TABLES],
        )
    )

    namespace = rss.CfnNamespace(
        scope,
        "WarehouseNamespace",
        namespace_name=names.WAREHOUSE,
        db_name=names.WAREHOUSE,
        admin_username="railpulse_admin",
        manage_admin_password=True,
        admin_password_secret_kms_key_id=key.key_arn,
        kms_key_id=key.key_arn,
        iam_roles=[copy_role.role_arn],
        default_iam_role_arn=copy_role.role_arn,
        log_exports=["userlog", "connectionlog", "useractivitylog"],
    )
    warehouse_sg = ec2.SecurityGroup(
        scope,
        "WarehouseSg",
        vpc=vpc,
        description="railpulse warehouse: SQL from the railpulse tasks",
        allow_all_outbound=False,
    )
    warehouse_sg.add_ingress_rule(task_sg, ec2.Port.tcp(WAREHOUSE_PORT), "SQL from railpulse tasks")
    # Pay per second of use at the smallest base capacity; a usage limit (set per account) caps
    # a runaway query's bill.
    workgroup = rss.CfnWorkgroup(
        scope,
        "Warehouse",
        workgroup_name=names.WAREHOUSE,
        namespace_name=names.WAREHOUSE,
        base_capacity=cfg.warehouse_base_rpu,
        publicly_accessible=False,
        enhanced_vpc_routing=True,
        port=WAREHOUSE_PORT,
        subnet_ids=vpc.select_subnets(subnet_type=subnets.subnet_type).subnet_ids,
        security_group_ids=[warehouse_sg.security_group_id],
        config_parameters=[
            rss.CfnWorkgroup.ConfigParameterProperty(
                parameter_key="require_ssl", parameter_value="true"
            )
        ],
    )
    workgroup.add_resource_dependency(namespace)
    return Catalog(database, workgroup, warehouse_sg, copy_role)
