"""``python -m bench --quick|--full``: measure every budget of docs/design.md, Budgets.

``make bench-quick`` (small sizes, one repetition, under two minutes) and
``make bench`` (the budgets' sizes, three repetitions, under ten minutes) print
a table of every figure with its budget, its ratio to the same-run ceiling and to
the peer (for the figures on a 3-primary Redis Cluster, to the same figure on one
Redis node), and pass/fail. The exit status is 1 when a budget is missed or a
correctness check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from bench.config import FULL, QUICK
from bench.runner import TARGETS, WORKLOADS, run_bench


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, 1 repetition")
    size.add_argument("--full", action="store_true", help="the budgets' sizes (default)")
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads (default all): {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="servers to measure (default all): botgw, ceiling, peer",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default: 1 quick, 3 full)")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    parser.add_argument("--profile", type=Path, help="py-spy the server into this directory")
    parser.add_argument("--gc-log", action="store_true", help="log servers' GC pauses >= 5 ms")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scale = QUICK if args.quick else FULL
    if args.reps:
        scale = scale.only(reps=args.reps)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    unknown = wanted - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    targets = tuple(t for t in TARGETS if t in args.targets.split(","))
    if "botgw" not in targets:
        raise SystemExit("--targets must include botgw")

    async def guarded() -> int:
        # SIGTERM ends the run like Ctrl-C: every child is stopped on the way out
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_bench(
            scale,
            wanted,
            pin=not args.no_pin,
            keep=args.keep,
            gc_log=args.gc_log,
            profile_dir=args.profile,
            json_path=args.json,
            targets=targets,
        )

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process the run started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
