"""On a CUDA device: steps per second of a small and a medium MLP against the hand-written loop,
and the host-device synchronizations fulmen causes per step.

- small: the tiny MLP of `bench_step_overhead.py` (32 -> 64 -> 10, batch 64): kernel launches
  and framework bookkeeping decide its speed.
- medium: four hidden layers of 4096 units (4096 inputs, 10 classes), batch 512: the device's
  arithmetic decides it, so the overhead should vanish.

The data is generated on the device and a loader hands out slices of it, so no run copies
batches from the host and none waits for an index transfer. Runs (hand, fulmen and Lightning,
everything off and defaults + `self.log(prog_bar=True)`) are interleaved after a warm-up; the
clock is read after `torch.cuda.synchronize()` at the start and the end of the epoch.

Synchronizations: one more, untimed run of each scenario under
`torch.cuda.set_sync_debug_mode("warn")`, catching the warning torch emits at every
synchronizing call, with the frame of fulmen (or Lightning) that caused it. A step's window runs
from its `on_train_batch_start` to the next one, so it includes fetching the next batch; the last
step is left out (the epoch-end timing sync falls in it). Log-flush steps are those after which
the logger writes (`(batch_idx + 1) % log_every_n_steps == 0`); everywhere else the count must be
0. Without a CUDA device the script says so and reports its rows as skipped; `--device cpu` runs
everything on the CPU instead (no synchronizations to count), to test the script itself.

    python benchmarks/bench_cuda.py
    python benchmarks/bench_cuda.py --quick
"""

from __future__ import annotations

import sys
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import torch
from common import (
    VALUE,
    Row,
    Samples,
    base_parser,
    format_table,
    framework_modules,
    machine_description,
    paired_row,
    report,
    silence_frameworks,
)
from torch.utils.data import DataLoader, Dataset
from workloads import ALL_OFF, Loader, Scenario, Workload, framework_runner, hand_runner, measure

SMALL = Workload(widths=(32, 64, 10), batch_size=64)
MEDIUM = Workload(widths=(4096,) * 5 + (10,), batch_size=512)
MEDIUM_BUDGET = 1.01
LOG_EVERY_N_STEPS = 50  # both frameworks' default
SETTINGS = (("off", "everything off"), ("full", "defaults + self.log"))
FRAMEWORK_FILES = ("/fulmen/", "/pytorch_lightning/", "/lightning_fabric/", "/lightning/")


class Batches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Batches as slices of tensors already on the device: item i is batch i."""

    def __init__(self, workload: Workload, steps: int, device: torch.device) -> None:
        generator = torch.Generator(device=device).manual_seed(0)
        rows = steps * workload.batch_size
        self.batch_size = workload.batch_size
        self.inputs = torch.randn(rows, workload.widths[0], generator=generator, device=device)
        self.targets = torch.randint(
            0, workload.widths[-1], (rows,), generator=generator, device=device
        )

    def __len__(self) -> int:
        return len(self.targets) // self.batch_size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.inputs[rows], self.targets[rows]


def device_loader(workload: Workload, steps: int, device: torch.device) -> Loader:
    """Build a loader of `steps` batches that live on `device` (no collation, no copies)."""
    return DataLoader(Batches(workload, steps, device), batch_size=None)


class SyncCounter:
    """Count the synchronizing calls torch reports, per training step, with where they came from."""

    def __init__(self) -> None:
        self.step = -1
        self.syncs: list[tuple[int, str]] = []  # (step, origin)

    def record(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """Take the place of `warnings.showwarning`: keep synchronizations, drop the rest."""
        if "synchroniz" not in str(message):
            return
        origin = f"{filename}:{lineno}"
        for frame in reversed(traceback.extract_stack()[:-1]):
            if any(part in frame.filename for part in FRAMEWORK_FILES):
                origin = (
                    f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno} ({frame.name})"
                )
                break
        self.syncs.append((self.step, origin))

    @contextmanager
    def watching(self, device: torch.device) -> Iterator[None]:
        """Record every synchronization torch warns about inside the block."""
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = self.record
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("warn")
            try:
                yield
            finally:
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("default")

    def summary(self, steps: int) -> tuple[float, float, Counter[str]]:
        """Syncs per log-flush step, per other step, and the origins of the latter.

        Steps 0 .. steps-2 count; the last step's window also holds the epoch-end timing sync.
        """
        counted = range(steps - 1)
        flush = [s for s in counted if (s + 1) % LOG_EVERY_N_STEPS == 0]
        other_steps = len(counted) - len(flush)
        on_flush = sum(1 for step, _ in self.syncs if step in flush and step < steps - 1)
        elsewhere = Counter(
            origin
            for step, origin in self.syncs
            if 0 <= step < steps - 1 and (step + 1) % LOG_EVERY_N_STEPS != 0
        )
        return (
            on_flush / max(len(flush), 1),
            sum(elsewhere.values()) / max(other_steps, 1),
            elsewhere,
        )


def step_marker(framework: Any, counter: SyncCounter) -> Any:
    """Build a callback that tells `counter` which training step is running."""

    class StepMarker(framework.Callback):  # type: ignore[misc]
        def on_train_batch_start(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            counter.step = args[-1]  # batch_idx

    return StepMarker()


def count_hand_syncs(workload: Workload, loader: Loader, device: torch.device) -> SyncCounter:
    """Count the synchronizations of the hand-written loop, per step."""
    import torch.nn.functional as F

    counter = SyncCounter()
    network = workload.network().to(device)
    optimizer = torch.optim.SGD(network.parameters(), lr=workload.learning_rate)
    with counter.watching(device):
        for step, (inputs, targets) in enumerate(loader):
            counter.step = step
            optimizer.zero_grad()
            F.cross_entropy(network(inputs), targets).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        counter.step = len(loader)
    return counter


def scenarios(
    workload: Workload, frameworks: dict[str, Any], device: torch.device
) -> list[Scenario]:
    """List hand, then each framework everything off and with defaults + self.log."""
    found = [Scenario("hand", "", hand_runner(workload, device))]
    for key, framework in frameworks.items():
        for setting, _ in SETTINGS:
            options = ALL_OFF if setting == "off" else {}
            run = framework_runner(framework, workload, options, setting == "full", device)
            found.append(Scenario(f"{key}-{setting}", "", run))
    return found


def step_row_name(size: str, label: str) -> str:
    return f"CUDA {size} MLP, per step, {label}"


def sync_row_name(label: str) -> str:
    return f"CUDA syncs per step outside log flushes, small MLP, {label}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables (or say that there is no CUDA device)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--small-steps", type=int, default=2000, help="steps per small run")
    parser.add_argument("--medium-steps", type=int, default=200, help="steps per medium run")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to test")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    medium = MEDIUM
    if args.quick:
        args.small_steps, args.medium_steps, args.repeats = 60, 10, 1
        if device.type == "cpu":
            medium = Workload(widths=(64,) * 5 + (10,), batch_size=64)
    sizes = (("small", SMALL, args.small_steps), ("medium", medium, args.medium_steps))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA: not available, skipped")
        skipped = "skipped: no CUDA"
        report(
            [
                Row(step_row_name(size, label), "µs/step", None, None, note=skipped)
                for size, _, _ in sizes
                for _, label in SETTINGS
            ]
            + [
                Row(sync_row_name(label), "", None, None, compare=VALUE, budget=0, note=skipped)
                for _, label in SETTINGS
            ]
        )
        return 0
    torch.set_num_threads(1)  # the host side as in the CPU benchmarks
    modules = framework_modules(args)
    silence_frameworks(*modules)
    frameworks = {module.split("_")[-1]: sys.modules[module] for module in modules}
    print(f"Machine: {machine_description()}")
    if device.type == "cuda":
        print(f"Device: {torch.cuda.get_device_name(device)}")
    rows = []
    for size, workload, steps in sizes:
        chosen = scenarios(workload, frameworks, device)
        loader = device_loader(workload, steps, device)
        samples = measure(chosen, loader, args.repeats, device_loader(workload, 60, device))
        print(f"\n{size}: {workload.describe()}, {steps} steps x {args.repeats} repetitions\n")
        print(format_table(samples, baseline=samples[0]))
        for sample in samples:
            print(f"  {sample.name}: {1e6 / sample.median:.0f} steps/s")
        by_key: dict[str, Samples] = {sample.name: sample for sample in samples}
        for setting, label in SETTINGS:
            rows.append(
                paired_row(
                    step_row_name(size, label),
                    by_key["hand"],
                    by_key[f"fulmen-{setting}"],
                    by_key.get(f"lightning-{setting}"),
                    MEDIUM_BUDGET if size == "medium" else None,
                )
            )

    steps = max(args.small_steps, 2 * LOG_EVERY_N_STEPS + 2)
    loader = device_loader(SMALL, steps, device)
    print(f"\nsynchronizations, small MLP, {steps} steps (log flushes every {LOG_EVERY_N_STEPS})\n")
    print("| run | per log-flush step | per other step | where (other steps) |")
    print("|---|---:|---:|---|")
    counts: dict[str, float] = {}
    hand = count_hand_syncs(SMALL, loader, device)
    _, counts["hand"], _ = hand.summary(steps)
    print(f"| hand | {hand.summary(steps)[0]:.2f} | {counts['hand']:.3f} | |")
    for key, framework in frameworks.items():
        for setting, _ in SETTINGS:
            counter = SyncCounter()
            options = ALL_OFF if setting == "off" else {}
            run = framework_runner(
                framework,
                SMALL,
                options,
                setting == "full",
                device,
                [step_marker(framework, counter)],
            )
            with counter.watching(device):
                run(loader)
            on_flush, elsewhere, origins = counter.summary(steps)
            counts[f"{key}-{setting}"] = elsewhere
            where = "; ".join(f"{origin} ×{n}" for origin, n in origins.most_common(5))
            print(f"| {key}-{setting} | {on_flush:.2f} | {elsewhere:.3f} | {where} |")
    for setting, label in SETTINGS:
        rows.append(
            Row(
                sync_row_name(label),
                "",
                counts["hand"],
                counts[f"fulmen-{setting}"],
                counts.get(f"lightning-{setting}"),
                VALUE,
                0,
                note="" if device.type == "cuda" else "on the CPU: nothing to count",
            )
        )
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
