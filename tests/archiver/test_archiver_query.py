"""A query over one day of one train opens only that day's objects (DuckDB's own file count)."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
from archiver_lakebuild import archive

from railpulse_archiver.query import connect_lake, files_scanned, run_sql, write_result
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.simulate import fleet_records

START_MS = 1_780_000_000_000  # 2026-05-28T20:26:40Z; three days of data follow


def test_one_train_one_day_reads_only_that_days_partitions(
    settings: ArchiverSettings, tmp_path: Path
) -> None:
    frames = list(
        fleet_records(trains=3, start_ms=START_MS, duration_s=3 * 86400, period_s=600, shards=1)
    )
    archive(msgspec.structs.replace(settings, buffer_max_records=300), frames, "telemetry")
    con = connect_lake(f"s3://{settings.bucket_lake}", endpoint=settings.aws_endpoint_url)
    objects = run_sql(
        con, "SELECT file FROM glob('s3://" + settings.bucket_lake + "/telemetry/*/*/*.parquet')"
    )
    files = [str(f) for f in objects.column("file").to_pylist()]
    day = [f for f in files if "/dt=2026-05-29/" in f]
    assert 0 < len(day) < len(files) / 2

    sql = "SELECT count(*) AS n FROM telemetry WHERE train = 'train-002' AND dt = '2026-05-29'"
    scan = files_scanned(con, sql)
    assert (scan.files_read, scan.files_total) == (len(day), len(files))

    expected = sum(
        len(f["readings"])
        for f in (msgspec.json.decode(r.data) for r in frames)
        if f["train"] == "train-002" and 1780012800000 <= f["ts_ms"] < 1780099200000
    )
    assert run_sql(con, sql).column("n").to_pylist() == [expected]

    full = files_scanned(con, "SELECT count(*) FROM telemetry WHERE train = 'train-002'")
    assert full.files_read == len(files)

    out = tmp_path / "day.parquet"
    result = run_sql(con, "SELECT * FROM telemetry WHERE train = 'train-002' AND dt = '2026-05-29'")
    write_result(result, "parquet", out, None)
    assert pq.read_table(out).num_rows == expected
    text = io.StringIO()
    write_result(
        run_sql(con, "SELECT channel, count(*) AS n FROM telemetry GROUP BY 1 ORDER BY 1 LIMIT 2"),
        "table",
        None,
        text,
    )
    assert text.getvalue().splitlines()[0].split() == ["channel", "n"]
