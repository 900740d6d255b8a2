"""The `railpulse` command as a new user meets it: no silent fallback to real AWS, one line and a
hint for every known error with its exit code (1 failed, 2 wrong usage, 3 nothing matched),
nothing written when nothing matched, progress on stderr, `query --explain` running once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from waiting import wait_until

from railpulse_archiver.keys import versioned
from railpulse_archiver.query import connect_lake
from railpulse_archiver.share import run_query
from railpulse_archiver.sql_source import LakeSource
from railpulse_archiver.tables import TABLES
from railpulse_cli.demo.supervisor import Supervisor
from railpulse_cli.main import main as cli
from railpulse_cli.progress import Progress

BIN = Path(sys.executable).parent


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordingProxy:
    """A listener standing in as every proxy: any HTTP(S) request a client makes lands here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    p = RecordingProxy()
    yield p
    p.close()


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No local stack, no AWS endpoint, no target: what a new user's shell has."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "RAILPULSE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAILPULSE_STACK_DIR", str(tmp_path / "no-stack"))
    return dict(os.environ)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake in a folder, laid out like the bucket: two readings of train-001 on 2026-05-29."""
    root = tmp_path / "lake"
    folder = root / "telemetry" / "dt=2026-05-29" / "hour=0"
    folder.mkdir(parents=True)
    ts = datetime(2026, 5, 29, 0, 30, tzinfo=UTC)
    rows = [
        {"train": "train-001", "seq": 1, "ts": ts, "channel": c, "value": v, "quality": "ok",
         "epoch": 0}
        for c, v in (("speed", 80.0), ("bearing_temp_1", 41.0))
    ]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=TABLES["telemetry"].schema),
        folder / versioned("a", TABLES["telemetry"].version),  # the key names its columns
    )
    return root


# --- no silent fallback to real AWS -------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["query", "SELECT 1"],
        ["query", "--lake", "s3://railpulse-lake", "SELECT 1"],
        [
            "export",
            "--train",
            "train-001",
            "--from",
            "2026-05-29",
            "--to",
            "2026-05-30",
            "--out",
            "OUT/t.csv",
        ],
        ["report", "--from", "2026-05-29", "--to", "2026-05-30", "--out", "OUT/r.html"],
        ["load"],
        ["rejects", "list"],
        ["console", "--port", "0"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_without_a_stack_or_aws_named_nothing_is_called(
    argv: list[str], bare_env: dict[str, str], proxy: RecordingProxy, tmp_path: Path
) -> None:
    """No stack env, no AWS_ENDPOINT_URL, no --aws: refused in one line before any request.

    Every proxy variable points at a listener that counts connections, and credentials are set,
    so a client that tried AWS would be seen (or would fail with another message)."""
    out = tmp_path / "out"
    out.mkdir()
    env = bare_env | {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        **{k: proxy.url for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")},
        "NO_PROXY": "",
    }
    proc = subprocess.run(
        [str(BIN / "railpulse"), *[a.replace("OUT", str(out)) for a in argv]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = _one_line(proc.stderr)
    assert proc.returncode == 1, proc.stderr
    assert "no target: the local stack is not running" in line
    assert "railpulse stack up" in line and "--aws" in line
    assert proxy.connections == 0
    assert list(out.iterdir()) == []


def test_aws_and_an_endpoint_at_once_are_refused(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    assert cli(["query", "--aws", "SELECT 1"]) == 2
    assert "--aws and AWS_ENDPOINT_URL both name a target" in _one_line(capsys.readouterr().err)


def test_an_unknown_target_is_refused(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAILPULSE_TARGET", "prod")
    assert cli(["rejects", "list"]) == 2
    assert "RAILPULSE_TARGET: 'prod' is not a target" in _one_line(capsys.readouterr().err)


# --- a stopped stack, an unreachable lake ------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["query", "SELECT 1"], ["rejects", "list"], ["query", "--warehouse", "SELECT 1"]]
)
def test_a_stopped_stack_is_one_line_naming_stack_up(
    argv: list[str],
    bare_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The env file of an earlier `stack up` is there; nothing listens at its endpoint."""
    state = tmp_path / "no-stack"
    state.mkdir()
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    (state / "env").write_text(f"AWS_ENDPOINT_URL={endpoint}\nAWS_REGION=us-east-1\n")
    assert cli(argv) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"nothing answers at {endpoint} (the local stack)" in line
    assert "railpulse stack up" in line


def test_an_endpoint_nothing_answers_at_is_one_line(
    bare_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert cli(["export", "--train", "t", "--from", "2026-01-01", "--to", "2026-01-02",
                "--out", "never.csv"]) == 1  # fmt: skip
    assert f"nothing answers at {endpoint} (AWS_ENDPOINT_URL)" in _one_line(capsys.readouterr().err)
    assert not Path("never.csv").exists()


# --- a lake that is not there ---------------------------------------------------------------------


def test_a_mistyped_lake_folder_is_refused(
    bare_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["query", "--lake", str(tmp_path / "lkae"), "SELECT 1"]) == 2
    assert "no such folder" in _one_line(capsys.readouterr().err)


def test_a_folder_with_no_lake_in_it_matches_nothing(
    bare_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["query", "--lake", str(empty), "SELECT count(*) FROM telemetry"]) == 3
    captured = capsys.readouterr()
    assert "no lake at" in _one_line(captured.err)
    assert captured.out == ""  # no "(0 rows)"


# --- export: an unknown train, a reversed range, an unknown extension ---------------------------


def _export(lake: Path, out: Path, train: str = "train-001", start: str = "2026-05-29",
            end: str = "2026-05-30") -> int:  # fmt: skip
    return cli(["export", "--lake", str(lake), "--train", train, "--from", start, "--to", end,
                "--out", str(out)])  # fmt: skip


def test_export_of_an_unknown_train_writes_nothing_and_names_the_trains_with_data(
    bare_env: dict[str, str], lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.csv"
    assert _export(lake, out, train="train-999") == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("railpulse export: no readings of train-999")
    assert "train-001" in last
    assert not out.exists()


@pytest.mark.parametrize("start,end", [("2026-05-30", "2026-05-29"), ("2026-05-29", "2026-05-29")])
def test_export_of_a_reversed_or_empty_range_is_refused(
    start: str, end: str, bare_env: dict[str, str], lake: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "t.csv"
    assert _export(lake, out, start=start, end=end) == 2
    assert f"--from {start} is not before --to {end}" in _one_line(capsys.readouterr().err)
    assert not out.exists()


def test_export_to_an_unknown_extension_is_refused(
    bare_env: dict[str, str], lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.xlsx"
    assert _export(lake, out) == 2
    line = _one_line(capsys.readouterr().err)
    assert ".xlsx is not a format written here" in line and ".parquet" in line
    assert not out.exists()


def test_export_writes_the_readings_and_says_what_it_does_on_stderr(
    bare_env: dict[str, str], lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.parquet"
    assert _export(lake, out) == 0
    err = capsys.readouterr().err
    assert f"railpulse export: reading train-001 from {lake}" in err
    assert f"2 readings of train-001 written to {out}" in err
    assert pq.read_table(out).column("channel").to_pylist() == ["bearing_temp_1", "speed"]


# --- settings ------------------------------------------------------------------------------------


def test_a_malformed_variable_is_one_line_naming_it(
    bare_env: dict[str, str],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RAILPULSE_BUFFER_MAX_RECORDS", "lots")
    assert cli(["query", "--lake", str(lake), "SELECT 1"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("railpulse query: RAILPULSE_BUFFER_MAX_RECORDS: expected an integer")


# --- query ---------------------------------------------------------------------------------------


def test_query_explain_runs_the_query_once(lake: Path) -> None:
    """A sequence counts the rows the query produced: two readings, so 2 if it ran once."""
    con = connect_lake(str(lake))
    con.execute("CREATE SEQUENCE runs")
    sql = "SELECT max(nextval('runs')) AS n, count(*) AS c FROM telemetry"
    result, scan = run_query(LakeSource(con), sql, explain=True)
    assert result.to_pylist() == [{"n": 2, "c": 2}]
    assert scan is not None and (scan.files_read, scan.files_total) == (1, 1)
    assert con.execute("SELECT currval('runs')").fetchone() == (2,)


def test_explain_of_a_count_answered_from_metadata_still_reports(lake: Path) -> None:
    """DuckDB answers a bare count(*) from Parquet footers; the profile must still be read."""
    result, scan = run_query(
        LakeSource(connect_lake(str(lake))), "SELECT count(*) AS c FROM telemetry", explain=True
    )
    assert result.to_pylist() == [{"c": 2}] and scan is not None


def test_query_explain_prints_the_objects_read(
    bare_env: dict[str, str], lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(["query", "--explain", "--lake", str(lake), "SELECT sum(value) AS s FROM telemetry"])
        == 0
    )
    captured = capsys.readouterr()
    assert "objects read: 1 of 1" in captured.err and "(1 rows)" in captured.out


def test_query_to_an_unknown_extension_is_refused(
    bare_env: dict[str, str], lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert cli(["query", "--lake", str(lake), "--out", str(out), "SELECT 1"]) == 2
    assert ".json is not a format written here" in _one_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_bad_query_is_one_line(
    bare_env: dict[str, str], lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["query", "--lake", str(lake), "SELECT nope FROM telemetry"]) == 1
    assert "nope" in _one_line(capsys.readouterr().err)


# --- progress ------------------------------------------------------------------------------------


def test_a_slow_step_gets_a_heartbeat_on_stderr() -> None:
    import io

    stream = io.StringIO()
    with Progress(
        "railpulse x", stream=stream, quiet_s=0.1, every_s=0.1, detail=lambda: "2 of 4"
    ) as p:
        p.step("loading")
        wait_until(lambda: "... loading (" in stream.getvalue(), timeout=10)
        p.done("loaded")
    text = stream.getvalue()
    assert text.startswith("railpulse x: loading ...\n")
    assert "; 2 of 4)" in text and "railpulse x: loaded (" in text


# --- console and demo ----------------------------------------------------------------------------


def test_the_console_refuses_a_taken_port_before_it_claims_to_serve(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [str(BIN / "railpulse-console"), "--port", str(port)],
            env={
                "PATH": os.environ["PATH"],
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert f"cannot listen on 127.0.0.1:{port}: the port is taken" in line and "--port" in line


def test_the_demo_refuses_a_taken_console_port_before_starting_anything(
    bare_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cli(["demo", "--console-port", str(port)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"the console's port {port} is taken" in line and "--console-port" in line
    assert not (tmp_path / "no-stack").exists()  # the stack was never started


def test_a_service_that_died_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(30): print(f'line {i}', flush=True)\nsys.exit('bind failed: errno 98')"
    with Supervisor(tmp_path) as supervisor:
        process = supervisor.start("console", [sys.executable, "-c", script], {})
        assert process.popen is not None
        process.popen.wait(30)
        assert supervisor.failed() == [process]
        report = process.death()
    first, *tail = report.splitlines()
    assert first == f"console exited with code 1; the end of {process.log}:"
    assert tail[-1] == "    | bind failed: errno 98" and "    | line 29" in tail
    assert "    | line 0" not in tail
