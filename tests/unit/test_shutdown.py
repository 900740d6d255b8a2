"""SIGTERM: stop taking work, drain what is in flight, checkpoint, exit 0 (what Fargate expects)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    from railpulse_shared.shutdown import GracefulShutdown

    async def main() -> int:
        taken = done = 0
        async with GracefulShutdown(drain_timeout=5) as shutdown:
            in_flight: set[asyncio.Task[None]] = set()

            async def work() -> None:
                nonlocal done
                await asyncio.sleep(0.3)
                done += 1

            while not shutdown.requested:
                await shutdown.wait_for(asyncio.sleep(0.05))
                if shutdown.requested:
                    break
                taken += 1
                task = asyncio.create_task(work())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                if taken == 1:
                    print("ready", flush=True)  # work is in flight
            await shutdown.drain(asyncio.gather(*in_flight))
        print(f"checkpoint taken={taken} done={done} signal={shutdown.received.name}", flush=True)
        return 0

    sys.exit(asyncio.run(main()))
    """
)


def test_sigterm_drains_in_flight_work_and_exits_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 10
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert proc.returncode == 0, err
    last = out.strip().splitlines()[-1]
    fields = dict(part.split("=") for part in last.split()[1:])
    # Everything taken before the signal finished before the checkpoint.
    assert fields["taken"] == fields["done"] and int(fields["taken"]) >= 1
    assert fields["signal"] == "SIGTERM"
