"""A minimal KCL record processor for checking the KCL against the local stack.

`python -m railpulse_devstack.kcl_probe` is the `executableName` the MultiLangDaemon runs per
shard. It appends one JSON line per record (shard, sequence number, partition key, data as
base64) to the file named by `RAILPULSE_KCL_PROBE_OUT` and checkpoints after every batch (or every
`RAILPULSE_KCL_PROBE_CHECKPOINT_S` seconds, and at shutdown), through
`railpulse_shared.kcl.ShardProcessor`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from railpulse_shared.batch import BatchResult, StreamRecord
from railpulse_shared.kcl import ShardHandler, ShardProcessor, run_processor

__all__ = ["ProbeHandler", "main"]


class ProbeHandler(ShardHandler):
    def __init__(self, out: Path) -> None:
        self.out = out

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
        if records:
            with self.out.open("a") as f:
                for r in records:
                    line = {
                        "shard": self.shard_id,
                        "sequence_number": r.sequence_number,
                        "partition_key": r.partition_key,
                        "data": base64.b64encode(r.data).decode(),
                    }
                    f.write(json.dumps(line) + "\n")
        return BatchResult(succeeded=[(r, None) for r in records])


def main() -> None:
    out = Path(os.environ["RAILPULSE_KCL_PROBE_OUT"])
    every = float(os.environ.get("RAILPULSE_KCL_PROBE_CHECKPOINT_S", "0"))
    run_processor(
        lambda: ShardProcessor(ProbeHandler(out), stream="probe", checkpoint_interval_s=every)
    )


if __name__ == "__main__":
    main()
