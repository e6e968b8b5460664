"""Run every `benchmarks/bench_*.py`, each in its own process, then print one summary table.

    python benchmarks/run_all.py                  # full runs (about 15 minutes on 2 cores)
    python benchmarks/run_all.py --quick          # tiny sizes: a smoke run
    python benchmarks/run_all.py --no-lightning   # without the Lightning columns
    python benchmarks/run_all.py --only import checkpoint

Each benchmark prints its own detailed tables (medians, min–max, ratios) as it goes and hands
its summary rows to this script through the file named by `$BENCH_SUMMARY_FILE`; the table at
the end (scenario, hand, fulmen, Lightning, fulmen vs hand, budget, met?) is the one the READMEs
show.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SUMMARY_FILE_VARIABLE, format_summary, read_rows

HERE = Path(__file__).resolve().parent
# The order of the summary table; a new bench_*.py that is not listed runs last.
ORDER = [
    "step_overhead",
    "log_overhead",
    "compute_bound",
    "import",
    "eval_loops",
    "checkpoint",
    "peak_rss",
    "ddp",
    "cuda",
]


def benchmark_scripts() -> list[Path]:
    """List the benchmark scripts in table order."""
    found = {path.stem.removeprefix("bench_"): path for path in HERE.glob("bench_*.py")}
    known = [found.pop(name) for name in ORDER if name in found]
    return known + [found[name] for name in sorted(found)]


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks in turn; print the summary; return 1 if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--no-lightning", action="store_true", help="skip the Lightning runs")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="e.g. step_overhead import")
    args = parser.parse_args(argv)
    scripts = benchmark_scripts()
    if args.only:
        unknown = set(args.only) - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            parser.error(f"--only {sorted(unknown)}: not among {[s.stem for s in scripts]}")
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    passed = [
        flag for flag, on in (("--quick", args.quick), ("--no-lightning", args.no_lightning)) if on
    ]
    failed = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as root:
        summary_file = os.path.join(root, "summary.jsonl")
        env = {**os.environ, SUMMARY_FILE_VARIABLE: summary_file}
        for script in scripts:
            print(f"== {script.name} {' '.join(passed)}".rstrip(), flush=True)
            # A fresh interpreter per benchmark: torch's thread settings and the imported
            # frameworks' global state do not leak from one benchmark into the next.
            if subprocess.run([sys.executable, str(script), *passed], env=env).returncode != 0:
                failed.append(script.name)
            print(flush=True)
        rows = read_rows(summary_file) if os.path.exists(summary_file) else []
    minutes = (time.monotonic() - started) / 60
    command = " ".join(["python benchmarks/run_all.py", *argv])
    print(f"== summary: `{command}`, {datetime.date.today()}, {minutes:.1f} min\n")
    print(format_summary(rows))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
