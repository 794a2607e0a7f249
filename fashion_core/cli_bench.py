"""``python -m fashion_core bench [--quick] [--suite NAME ...] [--save FILE] [--json]``: speed and
quality of the shipped models."""

from __future__ import annotations

import json
import sys


def cmd_bench(args):
    from .bench import format_report, merge_results, run_benchmark

    result = run_benchmark(quick=args.quick, suites=args.suite,
                           progress=lambda line: print(f"bench: {line}", file=sys.stderr))
    if args.save:
        from .registry import write_json_atomic

        previous = None
        if args.suite:  # a part of the benchmark updates its keys in the saved file, the rest stays
            try:
                with open(args.save, encoding="utf-8") as handle:
                    previous = json.load(handle)
            except (OSError, ValueError):
                previous = None
        write_json_atomic(args.save, merge_results(previous, result) if previous else result)
    return result, format_report(result)


def add_arguments(p):
    from .bench import SUITES

    p.add_argument("--quick", action="store_true", help="small subsets: well under a minute, every field still reported")
    p.add_argument("--suite", action="append", choices=SUITES, metavar="NAME",
                   help=f"run only this part (repeatable): {', '.join(SUITES)}; default: all")
    p.add_argument("--save", metavar="FILE", help="also write the JSON result here (docs/bench.json feeds README's "
                                                  "tables); with --suite only those parts' keys are replaced")
