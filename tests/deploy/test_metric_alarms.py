"""The alarms against what the services really emit: a record that fails drives the error-rate
alarm's own expression (read from the synthesised template) past the alarm's threshold, on the
numbers the KCL adapter wrote as EMF; and every railpulse metric an alarm watches is in the one
list (railpulse_shared.metric_names), owned by the service the alarm names.

That each watched metric is really emitted, with those dimensions, by a run of the four services
is the e2e suite's test (tests/e2e: test_every_metric_an_alarm_or_the_dashboard_watches_...)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from deploy_synth import Synth
from metric_contract import alarm_metrics, emitted, evaluate
from structlog.testing import capture_logs

from railpulse_shared.batch import BatchResult, RecordFailure, StreamRecord
from railpulse_shared.kcl import ShardHandler, ShardProcessor
from railpulse_shared.metric_names import ERROR_RATE, METRICS
from railpulse_shared.metrics import FileSink, Metrics


class OneBadRecord(ShardHandler):
    """Handles every record but one, whose processing raises (a handler bug)."""

    def __init__(self, bad: bytes) -> None:
        self.bad = bad
        self.dead: list[RecordFailure] = []

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
        if any(r.data == self.bad for r in records):
            raise ValueError("cannot handle this one")
        return BatchResult(succeeded=[(r, None) for r in records])

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        self.dead.extend(failures)


class Checkpointer:
    def checkpoint(self, *args: Any) -> None:
        pass


def _run_batch(emf: Path, service: str, stream: str, size: int) -> None:
    metrics = Metrics("railpulse", {"service": service, "stream": stream}, FileSink(str(emf)))
    processor = ShardProcessor(
        OneBadRecord(b"3"), stream=stream, metrics=metrics, checkpoint_interval_s=0,
        backoff_base_s=0.001, max_handler_attempts=2,
    )
    processor.initialize(SimpleNamespace(shard_id="shardId-000000000000", sequence_number=None))
    records = [
        SimpleNamespace(binary_data=str(n).encode(), sequence_number=str(100 + n),
                        sub_sequence_number=0, partition_key="train-1", timestamp_millis=0)
        for n in range(size)
    ]
    with capture_logs():
        processor.process_records(SimpleNamespace(
            records=records, checkpointer=Checkpointer(), millis_behind_latest=0))


def _error_rate_alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.all_resources("AWS::CloudWatch::Alarm").values()
        if "error-rate" in a["Properties"].get("AlarmName", "")
    }


def test_every_service_has_an_error_rate_alarm_per_stream(synth: Synth) -> None:
    assert set(_error_rate_alarms(synth)) == {
        "railpulse-ingest-error-rate",
        "railpulse-detector-error-rate",
        "railpulse-notifier-error-rate",
        "railpulse-archiver-error-rate-telemetry",
        "railpulse-archiver-error-rate-events",
    }


@pytest.mark.parametrize(
    "alarm",
    ["railpulse-ingest-error-rate", "railpulse-detector-error-rate",
     "railpulse-archiver-error-rate-events"],
)
def test_a_record_that_fails_drives_the_error_rate_alarm_past_its_threshold(
    synth: Synth, tmp_path: Path, alarm: str
) -> None:
    props = _error_rate_alarms(synth)[alarm]
    (expr,) = [q for q in props["Metrics"] if "Expression" in q]
    stats = {q["Id"]: q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q}
    dims = {d["Name"]: d["Value"] for d in next(iter(stats.values()))["Metric"]["Dimensions"]}
    # One batch of 20 records on that consumer's stream, one of which the handler cannot take.
    emf = tmp_path / "metrics.emf"
    _run_batch(emf, dims["service"], dims["stream"], 20)
    got = emitted([emf])
    values: dict[str, float | None] = {}
    for query_id, stat in stats.items():
        metric = stat["Metric"]
        assert stat["Stat"] == "Sum" and stat["Period"] == 300
        key = (metric["MetricName"], frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"]))
        assert key in got, f"{alarm} watches {key}, which the adapter did not emit"
        values[query_id] = sum(got[key])
    rate = evaluate(expr["Expression"], values)
    assert rate == pytest.approx(100 * 1 / 20)
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert rate > props["Threshold"], f"{alarm}: {rate} % does not pass {props['Threshold']}"
    # And a clean batch keeps it at 0 (zeros are emitted, so the alarm sees data, not none).
    clean = tmp_path / "clean.emf"
    _run_batch(clean, dims["service"], dims["stream"], 3)
    ok = emitted([clean])
    values = {}
    for query_id, stat in stats.items():
        metric = stat["Metric"]
        key = (metric["MetricName"], frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"]))
        values[query_id] = sum(ok[key])
    assert evaluate(expr["Expression"], values) == 0


def test_every_watched_metric_is_listed_and_owned_by_the_alarms_service(synth: Synth) -> None:
    for alarm, keys in alarm_metrics(synth.templates).items():
        for name, dims in keys:
            assert name in METRICS, (alarm, name)
            spec = METRICS[name]
            assert {d for d, _ in dims} == set(spec.dimensions), (alarm, name, dims)
            assert dict(dims)["service"] in spec.owners, (alarm, name)
            assert alarm.startswith(f"railpulse-{dict(dims)['service']}-"), (alarm, name)


def test_error_rates_divide_what_the_list_says(synth: Synth) -> None:
    for alarm, props in _error_rate_alarms(synth).items():
        service = alarm.split("-")[1]
        names = {q["MetricStat"]["Metric"]["MetricName"] for q in props["Metrics"] if "MetricStat" in q}
        assert names == {ERROR_RATE[service].failed, ERROR_RATE[service].total}, alarm
