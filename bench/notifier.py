"""Notifier throughput and latency against the local stack: one notifier task, SQS in, DynamoDB
state, shadow updates (and Kinesis events) out.

    make bench-notifier BENCH_ARGS="--messages 3000 --trains 50 --keys 4 --mix steady"

One task (`open_service`, the code `railpulse-notifier` runs) consumes its own queue (own table
and stream too, so nothing else interferes) while a producer process keeps a bounded backlog on
it: moto's SQS costs grow with queue depth (a receive scans every queued message), so a
pre-filled queue would measure moto rather than the notifier. Mixes:
  steady  anomalies as a detector emits them: each (train, alert key) repeats while its condition
          lasts, now and then rising in severity (raises and escalations write the shadow,
          repeats only touch the state);
  fresh   every message raises a new alarm: every message writes DynamoDB, the shadow and an event.
Progress on stderr; the last stdout line is one JSON object: notifications_per_s (messages done
per second, first receipt to last done), p99_ms (receipt to done: state stored and, when the
alert changed the train's open list, the shadow written), plus details, among them the CPU
the notifier task and the stack processes spent per message (the machine is shared: the CPU
figures say what the task costs, the rate what this machine gave it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import sys
import time
import uuid
from typing import Any

import boto3

from bench._rss import tree_cpu_s
from railpulse_devstack import stack as devstack
from railpulse_devstack.config import load_config
from railpulse_devstack.env import stack_env
from railpulse_notifier.handlers import Notified
from railpulse_notifier.service import open_service
from railpulse_notifier.settings import NotifierSettings
from railpulse_shared.codec import encode
from railpulse_shared.config import load_settings
from railpulse_shared.contracts import Anomaly, AnomalyKind, Attribution, Severity
from railpulse_shared.log import configure_logging
from railpulse_shared.shutdown import GracefulShutdown


def _log(msg: str) -> None:
    print(f"[bench-notifier] {msg}", file=sys.stderr, flush=True)


def _client(env: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def _resources(env: dict[str, str]) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    sqs, ddb, kinesis = (_client(env, s) for s in ("sqs", "dynamodb", "kinesis"))
    dlq = sqs.create_queue(QueueName=f"bench-nt-{run}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    queue = sqs.create_queue(QueueName=f"bench-nt-{run}", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": 5})})["QueueUrl"]
    table = f"bench-nt-alarms-{run}"
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "train", "AttributeType": "S"},
                              {"AttributeName": "alert_key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "train", "KeyType": "HASH"},
                   {"AttributeName": "alert_key", "KeyType": "RANGE"}])
    stream = f"bench-nt-events-{run}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return {"queue": queue, "dlq": dlq, "table": table, "stream": stream, "run": run}


def _cleanup(env: dict[str, str], res: dict[str, str], trains: set[str]) -> None:
    """moto keeps everything in memory and the shadow stand-in rewrites its whole store file as
    it changes: both slow down as they grow, so drop what this run made."""
    sqs, ddb, kinesis = (_client(env, s) for s in ("sqs", "dynamodb", "kinesis"))
    with contextlib.suppress(Exception):
        sqs.delete_queue(QueueUrl=res["queue"])
        sqs.delete_queue(QueueUrl=res["dlq"])
        ddb.delete_table(TableName=res["table"])
        kinesis.delete_stream(StreamName=res["stream"], EnforceConsumerDeletion=True)
    iot = boto3.client(
        "iot-data", endpoint_url=env["RAILPULSE_IOT_DATA_ENDPOINT"], region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    for train in trains:
        with contextlib.suppress(Exception):
            iot.delete_thing_shadow(thingName=train)


def _workload(n: int, trains: int, keys: int, mix: str, run: str, rng: random.Random
              ) -> list[Anomaly]:
    now = int(time.time() * 1000)
    out: list[Anomaly] = []
    level: dict[tuple[str, str], int] = {}
    for i in range(n):
        train = f"bench-{run}-{rng.randrange(trains):03d}"
        if mix == "fresh":
            key = f"limit:channel_{i:05d}"
            severity = Severity(rng.choice((1, 2, 3)))
        else:
            key = f"limit:channel_{rng.randrange(keys):02d}"
            current = level.get((train, key), 1)
            if rng.random() < 0.05 and current < 3:  # now and then the condition worsens
                current += 1
            level[(train, key)] = current
            severity = Severity(current)
        out.append(Anomaly(
            anomaly_id=uuid.uuid4().hex, train=train, ts_ms=now + i, frame_seq=i,
            category=AnomalyKind.LIMIT, severity=severity, score=2.0, threshold=1.0,
            alert_key=key, channels=[Attribution(channel=key.split(":")[1], contribution=1.0)],
            message=f"{key} above its operating range"))
    return out


def _produce(env: dict[str, str], queue: str, bodies: list[bytes], done: Any, backlog: int
             ) -> None:
    """Producer process: send in batches of 10, keeping at most `backlog` messages undone."""
    sqs = _client(env, "sqs")
    sent = 0
    while sent < len(bodies):
        if sent - done.value >= backlog:
            time.sleep(0.005)
            continue
        chunk = bodies[sent:sent + 10]
        sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(j), "MessageBody": b.decode()} for j, b in enumerate(chunk)])
        sent += len(chunk)


def _stack_pids(config: Any) -> dict[str, int]:
    pids: dict[str, int] = {}
    for name in ("moto", "iot"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids[name] = int((config.run_dir / f"{name}.pid").read_text().split()[0])
    return pids


def _pct(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


async def _drain(settings: NotifierSettings, total: int, done_count: Any, timeout_s: float
                 ) -> list[Notified]:
    done: list[Notified] = []
    finished = asyncio.Event()

    def observe(n: Notified) -> None:
        done.append(n)
        done_count.value = len(done)
        if len(done) % 500 == 0:
            _log(f"done {len(done)}/{total}")
        if len(done) >= total:
            finished.set()

    shutdown = GracefulShutdown(signals=())
    async with open_service(settings, observe) as service:
        # The whole task: the sweeper polls every train with unacknowledged alarms meanwhile.
        tasks = [asyncio.create_task(service.consumer.run(shutdown)),
                 asyncio.create_task(service.sweep_forever(shutdown))]
        try:
            await asyncio.wait_for(finished.wait(), timeout_s)
        finally:
            shutdown.request()
            await asyncio.gather(*tasks)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--trains", type=int, default=50)
    parser.add_argument("--keys", type=int, default=4, help="alert keys per train (steady mix)")
    parser.add_argument("--mix", choices=("steady", "fresh"), default="steady")
    parser.add_argument("--pollers", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=40, help="messages kept undone on the queue")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    configure_logging("warning")

    config = load_config()
    if not all(c.running for c in devstack.status(config)):
        devstack.up(config)  # (its readiness probe dumps all of moto's state: skip when running)
    env = stack_env(config)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[key] = env[key]  # the stack's own: its IoT stand-in checks the signatures
    res = _resources(env)
    anomalies = _workload(args.messages, args.trains, args.keys, args.mix, res["run"],
                          random.Random(args.seed))
    settings = load_settings(
        NotifierSettings, env=env, queue_alerts_url=res["queue"], alarm_table=res["table"],
        stream_events=res["stream"], wait_time_s=1, pollers=args.pollers, metrics_sink="stderr",
        metrics_flush_s=3600,
    )
    done_count = multiprocessing.Value("i", 0)
    producer = multiprocessing.Process(
        target=_produce, args=(env, res["queue"], [encode(a) for a in anomalies], done_count,
                               args.backlog), daemon=True)
    pids = _stack_pids(config)
    stack_cpu0 = {n: tree_cpu_s(p) for n, p in pids.items()}
    task_cpu0 = time.process_time()
    _log(f"{len(anomalies)} anomalies ({args.mix}) for {args.trains} trains, "
         f"backlog {args.backlog}, {args.pollers} pollers")
    producer.start()
    done = asyncio.run(_drain(settings, len(anomalies), done_count, args.timeout))
    task_cpu = time.process_time() - task_cpu0
    stack_cpu = {n: tree_cpu_s(p) - stack_cpu0[n] for n, p in pids.items()}
    producer.join(10)
    _cleanup(env, res, {a.train for a in anomalies})
    start = min(n.received_ms for n in done)
    end = max(n.done_ms for n in done)
    latencies = [n.done_ms - n.received_ms for n in done]
    shadow = [n.done_ms - n.received_ms for n in done if n.shadow_written]
    # Every train's first alert reads its shadow version and its alarms (cold cache): the first
    # 10% of the run is where those land, so its tail is reported apart as well.
    warm_from = start + (end - start) // 10
    warm = [n.done_ms - n.received_ms for n in done if n.received_ms >= warm_from]
    per_msg = 1000 / max(1, len(done))
    result = {
        "notifications_per_s": round(len(done) / max(0.001, (end - start) / 1000), 1),
        "p99_ms": _pct(latencies, 0.99),
        "p50_ms": _pct(latencies, 0.50),
        "p99_shadow_ms": _pct(shadow, 0.99),
        "p99_warm_ms": _pct(warm, 0.99),
        "messages": len(done),
        "shadow_writes": len(shadow),
        "transitions": sum(len(n.transitions) for n in done),
        "duplicates": sum(n.duplicate for n in done),
        "task_cpu_ms_per_msg": round(task_cpu * per_msg, 2),
        "moto_cpu_ms_per_msg": round(stack_cpu.get("moto", 0.0) * per_msg, 2),
        "iot_cpu_ms_per_msg": round(stack_cpu.get("iot", 0.0) * per_msg, 2),
        "mix": args.mix,
        "trains": args.trains,
        "pollers": args.pollers,
        "seconds": round((end - start) / 1000, 2),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
