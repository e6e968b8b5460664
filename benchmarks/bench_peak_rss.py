"""Peak resident memory of a 2,000-step run against the hand-written loop, one process per run.

Each run is a fresh interpreter that imports what it needs (torch alone for the hand loop),
trains the tiny MLP of `bench_step_overhead.py` for `--steps` steps and reports its peak
resident set size (`getrusage`'s `ru_maxrss`): imports, data, model, trainer, logger and
progress bar included. fulmen and Lightning run twice: everything off, and their defaults with
one `self.log(prog_bar=True)` per step. Runs are interleaved; the table gives medians.

    python benchmarks/bench_peak_rss.py            # 2000 steps, 3 processes per variant
    python benchmarks/bench_peak_rss.py --quick
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from common import (
    DIFFERENCE,
    Row,
    Samples,
    base_parser,
    checkout_environment,
    format_table,
    peak_rss_mb,
    report,
    use_lightning,
)

BUDGET_MB = 50.0


def child(kind: str, setting: str, steps: int) -> None:
    """Train `steps` steps in this process; print the peak RSS in MB."""
    import torch
    from workloads import ALL_OFF, Workload, framework_runner, hand_runner

    torch.set_num_threads(1)
    tiny = Workload(widths=(32, 64, 10), batch_size=64)
    cpu = torch.device("cpu")
    if kind == "hand":
        run = hand_runner(tiny, cpu)
    else:
        from common import silence_frameworks

        module = "fulmen" if kind == "fulmen" else "pytorch_lightning"
        silence_frameworks(module)
        framework = sys.modules[module]
        options = ALL_OFF if setting == "off" else {}
        run = framework_runner(framework, tiny, options, setting == "full", cpu)
    run(tiny.loader(steps))
    print(peak_rss_mb())


def peak_rss(kind: str, setting: str, steps: int) -> float:
    """Run `child` in a fresh interpreter; return the peak RSS it reports."""
    command = [sys.executable, __file__, "--child", kind, setting, str(steps)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=checkout_environment(), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"run {kind} {setting} failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="processes per variant")
    parser.add_argument("--child", nargs=3, help=" (internal: one run)")
    args = parser.parse_args(argv)
    if args.child:
        kind, setting, steps = args.child
        child(kind, setting, int(steps))
        return 0
    if args.quick:
        args.steps, args.repeats = 60, 1
    frameworks = ["fulmen"] + (["lightning"] if use_lightning(args) else [])
    variants = [("hand", "")] + [(f, s) for f in frameworks for s in ("off", "full")]
    samples = [Samples(f"{kind}-{setting}".rstrip("-"), "") for kind, setting in variants]
    for _ in range(args.repeats):
        for (kind, setting), sample in zip(variants, samples):
            sample.values.append(peak_rss(kind, setting, args.steps))
    print(
        f"peak RSS of a {args.steps}-step run of the tiny MLP, {args.repeats} fresh processes "
        "per variant, interleaved; MB\n"
    )
    print(format_table(samples, baseline=samples[0], unit="MB"))
    by_name = {sample.name: sample for sample in samples}
    rows = []
    for setting, label in (("off", "everything off"), ("full", "defaults + self.log")):
        lightning = by_name.get(f"lightning-{setting}")
        rows.append(
            Row(
                f"peak RSS, {args.steps}-step run, {label}",
                "MB",
                by_name["hand"].median,
                by_name[f"fulmen-{setting}"].median,
                lightning.median if lightning else None,
                DIFFERENCE,
                BUDGET_MB,
            )
        )
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
