"""The common pieces: config, logging, EMF metrics, batch processing, the channel catalogue."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog
from structlog.testing import capture_logs

from railpulse_shared.batch import FailureKind, StreamRecord, process_batch
from railpulse_shared.catalogue import Band, load_catalogue
from railpulse_shared.config import CommonSettings, load_settings
from railpulse_shared.contracts import Quality
from railpulse_shared.errors import ConfigError, PermanentError, TransientError
from railpulse_shared.log import configure_logging
from railpulse_shared.metrics import Metrics, StreamSink


class Settings(CommonSettings, frozen=True, kw_only=True):
    shard_count: int = 2
    table: str


def test_settings_from_environment() -> None:
    env = {"RAILPULSE_TABLE": "t", "RAILPULSE_SHARD_COUNT": "4", "AWS_ENDPOINT_URL": "http://x"}
    settings = load_settings(Settings, env)
    assert (settings.table, settings.shard_count, settings.aws_endpoint_url) == ("t", 4, "http://x")
    assert settings.stream_raw == "telemetry-raw"


def test_service_specific_endpoints_win_for_their_service_only() -> None:
    env = {"RAILPULSE_TABLE": "t", "AWS_ENDPOINT_URL": "http://moto",
           "AWS_ENDPOINT_URL_S3": "http://s3-proxy", "RAILPULSE_IOT_DATA_ENDPOINT": "http://iot"}
    settings = load_settings(Settings, env)
    assert settings.endpoint_for("s3") == "http://s3-proxy"
    assert settings.endpoint_for("iot-data") == "http://iot"
    assert settings.endpoint_for("kinesis") == settings.endpoint_for("glue") == "http://moto"
    assert load_settings(Settings, {"RAILPULSE_TABLE": "t"}).endpoint_for("s3") is None


def test_config_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="RAILPULSE_TABLE: is required") as missing:
        load_settings(Settings, {})
    assert missing.value.variable == "RAILPULSE_TABLE"
    with pytest.raises(ConfigError, match=r"RAILPULSE_SHARD_COUNT.*'many'") as bad:
        load_settings(Settings, {"RAILPULSE_TABLE": "t", "RAILPULSE_SHARD_COUNT": "many"})
    assert bad.value.variable == "RAILPULSE_SHARD_COUNT"


# The shape of an EMF document, from the specification
# (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
EMF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "items": {"type": "string", "minLength": 1, "maxLength": 250},
                                    "maxItems": 30,
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                        "Unit": {"enum": [
                                            "Seconds", "Microseconds", "Milliseconds", "Bytes",
                                            "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
                                            "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
                                            "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
                                            "Megabytes/Second", "Gigabytes/Second",
                                            "Terabytes/Second", "Bits/Second", "Kilobits/Second",
                                            "Megabits/Second", "Gigabits/Second",
                                            "Terabits/Second", "Count/Second", "None",
                                        ]},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def emf_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_emf_document_validates_against_the_specification() -> None:
    out = io.StringIO()
    metrics = Metrics("railpulse", {"service": "ingest", "stream": "telemetry-raw"}, StreamSink(out))
    metrics.add("RecordsIn", 10)
    metrics.add("RecordsIn", 5)
    metrics.add("BatchLatency", 12.5, "Milliseconds")
    metrics.add_metadata("shard_id", "shardId-000000000001")
    metrics.flush()
    metrics.flush()  # nothing buffered: nothing written
    (doc,) = emf_lines(out)
    jsonschema.validate(doc, EMF_SCHEMA)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    # Every dimension and metric the directive names is a member of the root object.
    for name in directive["Dimensions"][0]:
        assert isinstance(doc[name], str)
    for metric in directive["Metrics"]:
        assert metric["Name"] in doc
    assert doc["RecordsIn"] == [10.0, 5.0]
    assert doc["shard_id"] == "shardId-000000000001"


def test_emf_respects_the_100_metric_limit() -> None:
    out = io.StringIO()
    metrics = Metrics("railpulse", {"service": "x"}, StreamSink(out))
    for i in range(150):
        metrics.add(f"Metric{i}", i)
    metrics.flush()
    docs = emf_lines(out)
    assert [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in docs] == [100, 50]
    for doc in docs:
        jsonschema.validate(doc, EMF_SCHEMA)


def test_logs_are_json_with_timestamp_and_redaction() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out, service="ingest")
    try:
        structlog.get_logger().info("started", password="hunter2", shard="s1")
        structlog.get_logger().debug("hidden")
        (line,) = out.getvalue().splitlines()
        record = json.loads(line)
        assert record["event"] == "started" and record["level"] == "info"
        assert record["password"] == "***" and record["service"] == "ingest"
        assert record["timestamp"].endswith("Z")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


def record(n: int) -> StreamRecord:
    return StreamRecord(data=str(n).encode(), sequence_number=str(1000 + n))


async def test_partial_failure_is_a_result() -> None:
    async def handler(r: StreamRecord) -> int:
        n = int(r.data)
        if n == 1:
            raise PermanentError("poison")
        if n == 2:
            raise TransientError("throttled")
        if n == 3:
            raise KeyError("bug")
        return n * 10

    with capture_logs():
        result = await process_batch([record(i) for i in range(5)], handler)
    assert [value for _, value in result.succeeded] == [0, 40]
    assert [(f.seq, f.kind) for f in result.failed] == [
        ("1001", FailureKind.POISON),
        ("1002", FailureKind.TRANSIENT),
        ("1003", FailureKind.POISON),
    ]
    assert result.failed[2].error == "KeyError: 'bug'"


async def test_entire_failure_raises_only_when_asked() -> None:
    async def fail(_: StreamRecord) -> None:
        raise PermanentError("no")

    result = await process_batch([record(1)], fail)
    assert len(result.poison) == 1
    from railpulse_shared.batch import BatchProcessingError

    with pytest.raises(BatchProcessingError) as info:
        await process_batch([record(1), record(2)], fail, raise_on_entire_failure=True)
    assert len(info.value.child_exceptions) == 2


def test_catalogue_bands_and_quality() -> None:
    catalogue = load_catalogue()
    assert {"bearing_temp_8", "motor_current_4", "speed", "temperature", "pressure"} <= set(
        catalogue.channels
    )
    # The acceptance cases' limits (the device cases of docs/design.md).
    assert catalogue.breach("temperature", 22) is None
    assert catalogue.breach("temperature", 75).band is Band.WARNING  # type: ignore[union-attr]
    assert catalogue.breach("humidity", 10).direction == "low"  # type: ignore[union-attr]
    assert catalogue.breach("temperature", 150).band is Band.CRITICAL  # type: ignore[union-attr]
    assert catalogue.breach("humidity", -5).band is Band.IMPOSSIBLE  # type: ignore[union-attr]
    assert catalogue.channels["humidity"].quality(-5) is Quality.INVALID
    assert catalogue.breach("pressure", 1012) is None
    channel, value = catalogue.canonical("speed_mps", 10.0)  # type: ignore[misc]
    assert channel.name == "speed" and value == pytest.approx(36.0)
    assert catalogue.canonical("axle_strain", 1.0) is None


def test_bad_catalogue_names_the_variable(tmp_path: Any) -> None:
    path = tmp_path / "channels.toml"
    path.write_text('[channels.x]\nunit = "V"\nphysical = [0, 1]\noperating = [0, 5]\ncritical = [0, 2]\n')
    with pytest.raises(ConfigError, match=r"RAILPULSE_CATALOGUE.*must nest"):
        load_catalogue(str(path))


def test_metrics_sinks_by_url(tmp_path: Any) -> None:
    from railpulse_shared.metrics import AgentSink, FileSink, sink_from_url

    path = tmp_path / "emf.log"
    sink = sink_from_url(f"file://{path}")
    assert isinstance(sink, FileSink)
    metrics = Metrics("railpulse", {"service": "x"}, sink)
    metrics.add("RecordsIn", 3)
    metrics.flush()
    metrics.add("RecordsIn", 4)
    metrics.flush()
    assert [json.loads(line)["RecordsIn"] for line in path.read_text().splitlines()] == [3.0, 4.0]
    assert isinstance(sink_from_url("udp://127.0.0.1:25888"), AgentSink)
    with pytest.raises(ConfigError, match="RAILPULSE_METRICS_SINK"):
        sink_from_url("carrier-pigeon")


def test_catalogue_peer_groups_and_a_bad_spread(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    spread, channels = catalogue.peer_groups["bearing_temp"]
    assert spread == (10.0, 20.0) and [c.name for c in channels] == [f"bearing_temp_{i}" for i in range(1, 9)]
    assert "speed" not in {c.name for _, group in catalogue.peer_groups.values() for c in group}
    bad = tmp_path / "bad.toml"
    bad.write_text('[templates.t]\ncount = 2\nunit = "x"\nphysical = [0.0, 9.0]\noperating = [0.0, 9.0]\n'
                   'critical = [0.0, 9.0]\npeer_spread = [5.0, 2.0]\n')
    with pytest.raises(ConfigError, match="peer_spread"):
        load_catalogue(str(bad))
