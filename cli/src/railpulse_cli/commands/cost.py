"""`railpulse cost`: the monthly AWS bill of this deployment next to the reference design."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "run"]

_HELP = """\
Prints the monthly AWS cost of railpulse at list prices (IoT Core Basic Ingest, Kinesis,
Fargate, DynamoDB, S3, Redshift Serverless, VPC endpoints, CloudWatch, KMS) side by side with
the reference design of seed 000 (IoT messaging, a shadow update per frame, Kinesis Data
Analytics, Firehose, Lambda and a 24x7 Redshift node) for the same fleet, one message per
train per frame. Prices come from one dated file in railpulse_deploy/cost/prices_YYYY-MM.toml;
sizing assumptions (frame size, shards, task sizes, warehouse hours) are in
railpulse_deploy/cost/workload.py.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="monthly AWS cost of railpulse against the reference design",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--trains",
        type=int,
        nargs="+",
        default=[100, 500, 2000],
        metavar="N",
        help="fleet size(s) to price (default: 100 500 2000)",
    )
    parser.add_argument(
        "--hz", type=float, default=1.0, help="frames per train per second (default 1)"
    )
    parser.add_argument(
        "--channels", type=int, default=32, help="sensor channels per frame (default 32)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (figures per fleet size and every line item) instead of tables",
    )
    parser.add_argument(
        "--prices", default=None, metavar="YYYY-MM", help="price list date (default: newest)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_deploy.cost import (
        KDA_RETIREMENT_NOTE,
        LEVERS,
        TARGET_RATIO,
        Workload,
        estimate,
        load_prices,
    )

    try:
        prices = load_prices(args.prices)
        cases = [estimate(Workload(n, args.hz, args.channels), prices) for n in args.trains]
    except (ValueError, FileNotFoundError) as exc:
        print(f"railpulse cost: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    "prices_date": prices.date,
                    "region": prices.region,
                    "target_ratio": TARGET_RATIO,
                    "notes": [KDA_RETIREMENT_NOTE],
                    "levers": list(LEVERS),
                    "cases": [c.as_dict() for c in cases],
                },
                separators=(",", ":"),
            )
        )
        return 0
    for case in cases:
        w = case.workload
        print(
            f"\n== {w.trains} trains, {w.hz:g} Hz, {w.channels} channels "
            f"({w.frame_bytes} B frames), prices {prices.date} {prices.region} =="
        )
        for title, items in (
            ("railpulse", case.railpulse),
            ("reference (seed 000)", case.reference),
        ):
            print(f"  {title}")
            for i in items:
                print(f"    {i.service:<22} {i.item:<58} {i.monthly_usd:>10,.2f}")
        verdict = "meets" if case.ratio_to_reference <= TARGET_RATIO else "misses"
        print(
            f"  total: railpulse ${case.monthly_usd:,.2f}/month, reference "
            f"${case.reference_monthly_usd:,.2f}/month, ratio {case.ratio_to_reference:.1%} "
            f"({verdict} the {TARGET_RATIO:.0%} target); without the reference's per-frame "
            f"shadow deltas ${case.reference_without_deltas_usd:,.2f}/month, "
            f"ratio {case.monthly_usd / case.reference_without_deltas_usd:.1%}"
        )
    print(f"\nnote: {KDA_RETIREMENT_NOTE}")
    return 0
