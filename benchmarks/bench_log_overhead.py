"""The per-step cost of `self.log`: a run with one `self.log(prog_bar=True)` per step against the
same run that does not log, interleaved in one process, in fulmen (and in Lightning).

Tiny MLP (32->64->10), batch 64, CPU, one thread; logger, checkpointing, progress bar and model
summary off, so the only difference between the two runs is the logging call and the metric
bookkeeping it causes (values stay tensors; nothing is read back from the device per step).

    python benchmarks/bench_log_overhead.py [--quick] [--no-lightning]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any

import torch
from common import (
    VALUE,
    Row,
    base_parser,
    format_table,
    framework_modules,
    report,
    silence_frameworks,
)
from workloads import ALL_OFF, Scenario, Workload, framework_runner, measure

TINY = Workload(widths=(32, 64, 10), batch_size=64)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 60, 1
    torch.set_num_threads(1)
    modules = framework_modules(args)
    silence_frameworks(*modules)
    cpu = torch.device("cpu")
    chosen = []
    for module in modules:
        framework: Any = sys.modules[module]
        for log in (False, True):
            key = f"{module.split('_')[-1]}-{'log' if log else 'no-log'}"
            chosen.append(Scenario(key, "", framework_runner(framework, TINY, ALL_OFF, log, cpu)))
    print(
        f"{args.steps} steps per run, {args.repeats} interleaved repetitions, {TINY.describe()}\n"
    )
    samples = measure(chosen, TINY.loader(args.steps), args.repeats, TINY.loader(50))
    costs: dict[str, float] = {}
    for quiet, logging in zip(samples[::2], samples[1::2]):
        print(format_table([quiet, logging], baseline=quiet) + "\n")
        name = quiet.name.split("-")[0]
        costs[name] = statistics.median(b - a for a, b in zip(quiet.values, logging.values))
    report(
        [
            Row(
                "cost of one self.log(prog_bar=True) per step, everything off",
                "µs/step",
                None,
                costs["fulmen"],
                costs.get("lightning"),
                VALUE,
                note="paired difference: with minus without",
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
