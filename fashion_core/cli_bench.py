"""``python -m fashion_core bench [--quick] [--save FILE] [--json]``: speed and quality of the shipped models."""

from __future__ import annotations

import sys


def cmd_bench(args):
    from .bench import format_report, run_benchmark

    result = run_benchmark(quick=args.quick, progress=lambda line: print(f"bench: {line}", file=sys.stderr))
    if args.save:
        from .registry import write_json_atomic

        write_json_atomic(args.save, result)
    return result, format_report(result)


def add_arguments(p):
    p.add_argument("--quick", action="store_true", help="small subsets: well under a minute, every field still reported")
    p.add_argument("--save", metavar="FILE", help="also write the JSON result here (docs/bench.json feeds README's tables)")
