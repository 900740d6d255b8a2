"""IAM wildcards, cdk-nag, cfn-lint, scaling bounds and alarms over the synthesised app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cdk_nag import AwsSolutionsChecks
from deploy_synth import Synth

from railpulse_deploy import names
from railpulse_deploy.config import DeployConfig
from railpulse_deploy.nag import flatten, statements
from railpulse_deploy.wildcards import is_documented

_POLICY_HOLDERS = {
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::IAM::ManagedPolicy": "PolicyDocument",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
}


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _allow_statements(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for stack, tpl in synth.templates.items():
        for logical, res in tpl["Resources"].items():
            docs = []
            if res["Type"] in _POLICY_HOLDERS:
                docs.append(res["Properties"][_POLICY_HOLDERS[res["Type"]]])
            if res["Type"] == "AWS::IAM::Role":
                docs += [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
            for doc in docs:
                found += [
                    (f"{stack}/{logical}", st)
                    for st in statements(doc)
                    if st.get("Effect") == "Allow"
                ]
    return found


def test_no_undocumented_wildcards(synth: Synth) -> None:
    allows = _allow_statements(synth)
    assert len(allows) > 30
    offenders = []
    for where, st in allows:
        actions = [str(a) for a in _as_list(st.get("Action", []))]
        resources = [flatten(r) for r in _as_list(st.get("Resource", []))]
        for a in actions:
            for r in resources:
                if ("*" in a or "*" in r) and not is_documented(a, r):
                    offenders.append(f"{where}: {a} on {r}")
        if "NotAction" in st or "NotResource" in st:
            offenders.append(f"{where}: NotAction/NotResource")
    assert not offenders, "\n".join(offenders)


def test_wildcard_check_catches_an_undocumented_one() -> None:
    assert not is_documented("s3:*", "arn:aws:s3:::railpulse-lake/*")
    assert not is_documented("kinesis:GetRecords", "*")
    assert is_documented("s3:PutObject", "arn:<AWS::Partition>:s3:::railpulse-lake/telemetry/*")


def test_cdk_nag_aws_solutions_passes_with_documented_acknowledgements(synth: Synth) -> None:
    result = AwsSolutionsChecks(synth.app, verbose=True).validate_scope(synth.app)
    report = [
        f"{v.rule_name}: {[r.construct_path for r in v.violating_resources]}"
        for v in result.violations
    ]
    assert result.success, "\n".join(report)


def test_only_documented_acknowledgements(synth: Synth) -> None:
    from aws_cdk import Validations

    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acks: dict[str, str] = {}
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == key and entry.data:
                acks |= {
                    k.split("::")[-1] if k.lower().startswith("annotation::") else k: str(v)
                    for k, v in entry.data.items()
                }
    # cdk-nag's acknowledgements (CDK and cfn-lint keep their own under other prefixes).
    nag = {rule: reason for rule, reason in acks.items() if rule.startswith("AwsSolutions")}
    assert nag
    for rule, reason in nag.items():
        assert rule == "AwsSolutions-ECS2" or rule.startswith("AwsSolutions-IAM5[Resource::"), rule
        assert len(reason) > 20, rule


def test_cfn_lint_is_clean(synth: Synth, tmp_path: Path) -> None:
    files = []
    for stack, tpl in synth.templates.items():
        path = tmp_path / f"{stack}.json"
        path.write_text(json.dumps(tpl))
        files.append(str(path))
    cfn_lint = Path(sys.executable).with_name("cfn-lint")  # the dev dependency's console script
    proc = subprocess.run([str(cfn_lint), *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Exceptions are only the documented, per-resource ones.
    excepted = [
        meta
        for tpl in synth.templates.values()
        for r in tpl["Resources"].values()
        if (meta := r.get("Metadata", {}).get("railpulse:lint-exception"))
    ]
    assert {e.split(":")[0] for e in excepted} <= {"W3010", "W3005"}


# -- scaling ----------------------------------------------------------------------------------

KCL_STACKS = {
    "RailpulseIngest": [names.STREAM_RAW],
    "RailpulseDetector": [names.STREAM_TELEMETRY],
    "RailpulseArchiver": [names.STREAM_TELEMETRY, names.STREAM_EVENTS],
}


def _tasks_for(synth: Synth, stack: str, stream: str, shards: float) -> int | None:
    """What the step-scaling policies set the task count to for an OpenShardCount reading."""
    res = synth.templates[stack]["Resources"]
    for alarm in (r["Properties"] for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        if alarm.get("MetricName") != "OpenShardCount" or alarm["Dimensions"] != [
            {"Name": "StreamName", "Value": stream}
        ]:
            continue
        op, threshold = alarm["ComparisonOperator"], alarm["Threshold"]
        if (op == "GreaterThanOrEqualToThreshold" and shards < threshold) or (
            op == "LessThanOrEqualToThreshold" and shards > threshold
        ):
            continue
        (policy_ref,) = alarm["AlarmActions"]
        policy = res[policy_ref["Ref"]]["Properties"]["StepScalingPolicyConfiguration"]
        assert policy["AdjustmentType"] == "ExactCapacity"
        delta = shards - threshold
        for step in policy["StepAdjustments"]:
            lo, hi = (
                step.get("MetricIntervalLowerBound", float("-inf")),
                step.get("MetricIntervalUpperBound", float("inf")),
            )
            if lo <= delta < hi or (hi == 0 and delta == 0):
                return int(step["ScalingAdjustment"])
    return None


@pytest.mark.parametrize("stack", KCL_STACKS)
def test_kcl_services_run_one_task_per_open_shard(synth: Synth, stack: str) -> None:
    top = DeployConfig().max_shards
    targets = list(synth.resources(stack, "AWS::ApplicationAutoScaling::ScalableTarget").values())
    assert len(targets) == len(KCL_STACKS[stack])
    for t in targets:
        assert t["Properties"]["MinCapacity"] == 1 and t["Properties"]["MaxCapacity"] == top
    for stream in KCL_STACKS[stack]:
        for shards in range(1, top + 1):
            assert _tasks_for(synth, stack, stream, shards) == shards, (stream, shards)
        # Beyond the cap the count stays at the cap: still never more tasks than shards.
        assert _tasks_for(synth, stack, stream, top + 5) == top


def test_notifier_scales_on_the_oldest_alert(synth: Synth) -> None:
    (target,) = synth.resources(
        "RailpulseNotifier", "AWS::ApplicationAutoScaling::ScalableTarget"
    ).values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 4)
    alarms = [
        a["Properties"]
        for a in synth.resources("RailpulseNotifier", "AWS::CloudWatch::Alarm").values()
    ]
    scaling = [
        a
        for a in alarms
        if a.get("MetricName") == "ApproximateAgeOfOldestMessage"
        and "railpulse" not in a.get("AlarmName", "")
    ]
    assert scaling and all(
        a["Dimensions"] == [{"Name": "QueueName", "Value": names.QUEUE_ALERTS}] for a in scaling
    )


# -- alarms -----------------------------------------------------------------------------------

EXPECTED_ALARMS = {
    "RailpulseIngest": {
        "iterator-age",
        "rejects-depth",
        "rejects-dlq-depth",
        "error-rate",
        "silent-train",
        "clock-skew",
    },
    "RailpulseDetector": {
        "iterator-age",
        "records-dead-lettered",
        "snapshots-failed",
        "model-states-dropped",
        "error-rate",
    },
    "RailpulseNotifier": {"oldest-alert-age", "alerts-dlq-depth", "error-rate"},
    "RailpulseArchiver": {
        "iterator-age-telemetry",
        "iterator-age-events",
        "records-dead-lettered-telemetry",
        "records-dead-lettered-events",
        "warehouse-set-aside",
        "error-rate-telemetry",
        "error-rate-events",
    },
}


@pytest.mark.parametrize(("stack", "expected"), EXPECTED_ALARMS.items())
def test_service_alarms_notify_and_name_a_runbook(
    synth: Synth, stack: str, expected: set[str]
) -> None:
    service = stack.removeprefix("Railpulse").lower()
    alarms = {
        a["Properties"]["AlarmName"].removeprefix(f"railpulse-{service}-"): a["Properties"]
        for a in synth.resources(stack, "AWS::CloudWatch::Alarm").values()
        if "AlarmName" in a["Properties"]
    }
    assert set(alarms) == expected
    runbooks = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] and alarm["OKActions"], name
        runbook = alarm["AlarmDescription"].split("Runbook: ")[1].split(";")[0]
        assert (runbooks.parent.parent / runbook).is_file(), runbook
        if name.endswith("dlq-depth") or name == "rejects-depth":
            assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_detector_lag_is_measured_on_its_fan_out_consumer(synth: Synth) -> None:
    alarms = [
        a["Properties"]
        for a in synth.resources("RailpulseDetector", "AWS::CloudWatch::Alarm").values()
    ]
    lag = next(a for a in alarms if a.get("AlarmName") == "railpulse-detector-iterator-age")
    assert lag["MetricName"] == "SubscribeToShardEvent.MillisBehindLatest"
    assert {"Name": "ConsumerName", "Value": "railpulse-detector"} in lag["Dimensions"]


def test_dashboard_exists(synth: Synth) -> None:
    (dash,) = synth.resources("RailpulseDashboard", "AWS::CloudWatch::Dashboard").values()
    assert dash["Properties"]["DashboardName"] == "railpulse"
    body = json.dumps(dash["Properties"]["DashboardBody"])
    for needle in (
        "OpenShardCount",
        "IteratorAgeMilliseconds",
        "ApproximateAgeOfOldestMessage",
        "SilentTrains",
        "RecordsDeadLettered",
    ):
        assert needle in body


def test_every_service_that_dead_letters_may_put_on_events(synth: Synth) -> None:
    """A dead letter goes to SQS and, for the lake's `rejects` table, on `events`
    (railpulse_shared.rejects): ingest, the detector and the archiver all send them."""
    writers: dict[str, set[str]] = {}
    for where, st in _allow_statements(synth):
        actions = {str(a) for a in _as_list(st.get("Action", []))}
        if "kinesis:PutRecords" in actions:
            stack = where.split("/", 1)[0]
            writers.setdefault(stack, set()).update(
                flatten(r) for r in _as_list(st.get("Resource", []))
            )
    for service in ("Ingest", "Detector", "Archiver"):
        (stack,) = [s for s in synth.templates if s.lower().endswith(service.lower())]
        resources = writers.get(stack, set())
        assert any("Events" in r or "events" in r for r in resources), (stack, resources)
