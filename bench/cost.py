"""`make bench-cost`: railpulse's monthly cost against the reference design, both priced in
this run from the same price list. Last stdout line: one JSON object."""

from __future__ import annotations

import argparse
import json
import sys

from railpulse_deploy.cost import Workload, estimate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.cost", description=__doc__)
    parser.add_argument("--trains", type=int, default=500)
    parser.add_argument("--hz", type=float, default=1.0)
    parser.add_argument("--channels", type=int, default=32)
    args = parser.parse_args(argv)
    result = estimate(Workload(args.trains, args.hz, args.channels))
    for item in sorted(result.railpulse, key=lambda i: -i.monthly_usd)[:5]:
        print(
            f"bench.cost: top railpulse item {item.service}/{item.item}: ${item.monthly_usd:,.2f}",
            file=sys.stderr,
        )
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
