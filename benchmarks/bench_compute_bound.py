"""A compute-bound step: fulmen's overhead should vanish next to the model's own work.

An MLP with four hidden layers of 1024 units (1024 inputs, 10 classes), batch 256, SGD, one CPU
thread: about 6.4 GFLOP, on the order of 100 ms, per step. The hand-written loop, fulmen with its
defaults and one `self.log(prog_bar=True)` per step, and Lightning the same way train it on the
same data, interleaved; only the training epoch is timed (see `workloads.py`).

    python benchmarks/bench_compute_bound.py            # 20 steps x 9 repetitions
    python benchmarks/bench_compute_bound.py --quick    # a 64-wide MLP: a smoke run
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
from common import (
    base_parser,
    format_table,
    framework_modules,
    machine_description,
    paired_row,
    report,
    silence_frameworks,
    use_lightning,
)
from workloads import Workload, measure, standard_scenarios

BUDGET = 1.01


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repetitions")
    args = parser.parse_args(argv)
    width = 1024
    if args.quick:
        width, args.steps, args.repeats = 64, 3, 1
    workload = Workload(widths=(width,) * 5 + (10,), batch_size=256)
    torch.set_num_threads(1)
    silence_frameworks(*framework_modules(args))
    every = standard_scenarios(workload, use_lightning(args))
    chosen = [s for s in every if not s.key.endswith("-off")]
    print(f"Machine: {machine_description()}")
    print(
        f"{args.steps} steps per run, {args.repeats} interleaved repetitions, "
        f"{workload.describe()}; wall time of the training epoch\n"
    )
    samples = measure(chosen, workload.loader(args.steps), args.repeats, workload.loader(2))
    for sample in samples:
        sample.values = [value / 1000 for value in sample.values]  # µs -> ms
    print(format_table(samples, baseline=samples[0], unit="ms/step"))
    by_key = {sample.name: sample for sample in samples}
    report(
        [
            paired_row(
                f"compute-bound MLP {width}x4 (batch 256), per step, defaults + self.log",
                by_key["hand"],
                by_key["fulmen-full"],
                by_key.get("lightning-full"),
                BUDGET,
                unit="ms/step",
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
