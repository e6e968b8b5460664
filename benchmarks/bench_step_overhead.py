"""Measure fulmen's cost per training step against a hand-written PyTorch loop (and Lightning).

Every scenario trains the same tiny MLP (32 -> 64 -> 10) with SGD on pre-generated data, batch 64,
on one CPU thread, so the model's own work is small and the framework's bookkeeping shows. Only
the training epoch is timed: from `on_train_epoch_start` to `on_train_epoch_end` (for the hand
loop, the same span around its `for` loop). Scenarios run interleaved (A B C A B C ...) in one
process after a warm-up, so drifts of a shared machine hit all of them alike.

    python benchmarks/bench_step_overhead.py            # 2000 steps x 7 repetitions
    python benchmarks/bench_step_overhead.py --quick    # a smoke run: 60 steps x 1
    python benchmarks/bench_step_overhead.py --profile fulmen-full   # cProfile one scenario
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from collections.abc import Sequence

import torch
import workloads
from common import (
    base_parser,
    collect_garbage,
    format_table,
    framework_modules,
    machine_description,
    paired_row,
    report,
    silence_frameworks,
    use_lightning,
)
from workloads import Scenario, Workload, measure, standard_scenarios

TINY = Workload(widths=(32, 64, 10), batch_size=64)


def profile(scenario: Scenario, steps: int, top: int) -> str:
    """Run `scenario` once under cProfile, the training epoch only; list the costliest functions."""
    scenario.run(TINY.loader(200))
    loader = TINY.loader(steps)
    profiler = cProfile.Profile()
    started = False

    def toggling_clock() -> float:
        # The runs read the clock exactly at the start and the end of the epoch.
        nonlocal started
        started = not started
        profiler.enable() if started else profiler.disable()
        return time.perf_counter()

    collect_garbage()
    workloads.clock = toggling_clock
    try:
        scenario.run(loader)
    finally:
        workloads.clock = time.perf_counter
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(top)
    total_us = stats.total_tt / steps * 1e6  # type: ignore[attr-defined]
    return (
        f"{scenario.key}: {total_us:.1f} µs/step under cProfile, which inflates Python-heavy "
        f"code. Times are for {steps} steps: divide by {steps} for the cost per step.\n"
        + stream.getvalue()
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table (or a profile with --profile)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions")
    parser.add_argument("--profile", metavar="SCENARIO", help="cProfile one scenario instead")
    parser.add_argument("--top", type=int, default=40, help="rows of the profile to print")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 60, 1
    torch.set_num_threads(1)
    silence_frameworks(*framework_modules(args))
    chosen = standard_scenarios(TINY, use_lightning(args))
    print(f"Machine: {machine_description()}")
    if args.profile:
        scenario_by_key = {s.key: s for s in chosen}
        if args.profile not in scenario_by_key:
            parser.error(f"--profile {args.profile!r}: choose one of {sorted(scenario_by_key)}")
        print(profile(scenario_by_key[args.profile], args.steps, args.top))
        return 0
    print(
        f"{args.steps} steps per run, {args.repeats} interleaved repetitions, {TINY.describe()}; "
        "wall time of the training epoch\n"
    )
    # 200 warm-up steps reach the first logger write (step 50), so lazy imports are done.
    warmup = TINY.loader(min(200, args.steps))
    samples = measure(chosen, TINY.loader(args.steps), args.repeats, warmup)
    print(format_table(samples, baseline=samples[0]))
    print()
    for sample in samples:
        print(f"  {sample.name}: {sample.description}")
    by_key = {sample.name: sample for sample in samples}
    report(
        [
            paired_row(
                f"tiny MLP, per step, {setting}",
                by_key["hand"],
                by_key[f"fulmen-{suffix}"],
                by_key.get(f"lightning-{suffix}"),
                budget,
            )
            for setting, suffix, budget in [
                ("everything off", "off", 1.03),
                ("defaults + self.log", "full", 1.10),
            ]
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
