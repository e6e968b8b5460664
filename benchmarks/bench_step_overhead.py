"""Measure fulmen's cost per training step against a hand-written PyTorch loop (and Lightning).

Every scenario trains the same tiny MLP (32 -> 64 -> 10) with SGD on pre-generated data, batch 64,
on one CPU thread, so the model's own work is small and the framework's bookkeeping shows. Only
the training epoch is timed: from `on_train_epoch_start` to `on_train_epoch_end` (for the hand
loop, the same span around its `for` loop). Scenarios run interleaved (A B C A B C ...) in one
process after a warm-up, so drifts of a shared machine hit all of them alike.

    python benchmarks/bench_step_overhead.py            # 2000 steps x 7 repetitions
    python benchmarks/bench_step_overhead.py --quick    # a smoke run, well under a minute
    python benchmarks/bench_step_overhead.py --profile fulmen-full   # cProfile one scenario
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from common import (
    Samples,
    collect_garbage,
    format_table,
    lightning_available,
    machine_description,
    output_to_devnull,
    silence_frameworks,
)
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BATCH_SIZE = 64
IN_FEATURES, HIDDEN, CLASSES = 32, 64, 10
LEARNING_RATE = 0.01

# What the runs are timed with (a module global, so a harness may swap it for another counter).
clock: Callable[[], float] = time.perf_counter

# Every switch that costs time per step, off: what the issue calls "everything off".
ALL_OFF = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "limit_val_batches": 0,
}


def make_loader(steps: int) -> DataLoader[tuple[torch.Tensor, ...]]:
    """Build a loader of `steps` batches of synthetic data, generated up front."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(steps * BATCH_SIZE, IN_FEATURES, generator=generator)
    targets = torch.randint(0, CLASSES, (steps * BATCH_SIZE,), generator=generator)
    return DataLoader(TensorDataset(inputs, targets), batch_size=BATCH_SIZE, num_workers=0)


def make_network() -> nn.Module:
    """Build the MLP with the same initial weights every time."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))


def run_hand_loop(loader: DataLoader[tuple[torch.Tensor, ...]]) -> float:
    """Train one epoch with plain PyTorch; return the epoch's wall time in seconds."""
    network = make_network()
    network.train()
    optimizer = torch.optim.SGD(network.parameters(), lr=LEARNING_RATE)
    start = clock()
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(network(inputs), targets)
        loss.backward()
        optimizer.step()
    return clock() - start


def module_class(base: type[Any], log_loss: bool) -> type[Any]:
    """Subclass `base` (a LightningModule class) into the benchmark's module."""

    class TinyModule(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.network = make_network()

        def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
            inputs, targets = batch
            loss = F.cross_entropy(self.network(inputs), targets)
            if log_loss:
                self.log("loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=LEARNING_RATE)

    return TinyModule


def timer_class(base: type[Any]) -> type[Any]:
    """Subclass `base` (a Callback class) into a callback that times the training epoch."""

    class EpochTimer(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.start = self.end = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.start = clock()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.end = clock()

    return EpochTimer


def framework_runner(
    framework: Any, trainer_kwargs: dict[str, Any], log_loss: bool
) -> Callable[[DataLoader[tuple[torch.Tensor, ...]]], float]:
    """Build a run of one epoch under `framework` (fulmen or pytorch_lightning)."""
    module_type = module_class(framework.LightningModule, log_loss)
    timer_type = timer_class(framework.Callback)

    def run(loader: DataLoader[tuple[torch.Tensor, ...]]) -> float:
        with tempfile.TemporaryDirectory() as root:
            timer = timer_type()
            with output_to_devnull():
                trainer = framework.Trainer(
                    max_epochs=1, default_root_dir=root, callbacks=[timer], **trainer_kwargs
                )
                trainer.fit(module_type(), train_dataloaders=loader)
            if trainer.global_step != len(loader):
                raise RuntimeError(f"ran {trainer.global_step} steps, expected {len(loader)}")
            return float(timer.end - timer.start)

    return run


@dataclass
class Scenario:
    """One way of training the model, with its name in the table."""

    key: str
    description: str
    run: Callable[[DataLoader[tuple[torch.Tensor, ...]]], float]


def scenarios(include_lightning: bool) -> list[Scenario]:
    """List the scenarios, the hand loop first (it is the baseline)."""
    import fulmen

    found = [
        Scenario("hand", "hand-written loop (the limit)", run_hand_loop),
        Scenario("fulmen-off", "fulmen, everything off", framework_runner(fulmen, ALL_OFF, False)),
        Scenario("fulmen-full", "fulmen, defaults + self.log", framework_runner(fulmen, {}, True)),
    ]
    if include_lightning:
        import pytorch_lightning

        found += [
            Scenario(
                "lightning-off",
                "Lightning, everything off",
                framework_runner(pytorch_lightning, ALL_OFF, False),
            ),
            Scenario(
                "lightning-full",
                "Lightning, defaults + self.log",
                framework_runner(pytorch_lightning, {}, True),
            ),
        ]
    return found


def measure(chosen: list[Scenario], steps: int, repeats: int, warmup_steps: int) -> list[Samples]:
    """Warm every scenario up, then time them interleaved; return µs per step per repetition."""
    warmup = make_loader(warmup_steps)
    for scenario in chosen:
        scenario.run(warmup)
    loader = make_loader(steps)
    samples = [Samples(s.key, s.description) for s in chosen]
    for _ in range(repeats):
        for scenario, sample in zip(chosen, samples):
            collect_garbage()
            sample.values.append(scenario.run(loader) / steps * 1e6)
    return samples


def profile(scenario: Scenario, steps: int, top: int) -> str:
    """Run `scenario` once under cProfile, the training epoch only; list the costliest functions."""
    global clock
    scenario.run(make_loader(200))
    loader = make_loader(steps)
    profiler = cProfile.Profile()
    started = False

    def toggling_clock() -> float:
        # The runs read the clock exactly at the start and the end of the epoch.
        nonlocal started
        started = not started
        profiler.enable() if started else profiler.disable()
        return time.perf_counter()

    collect_garbage()
    clock = toggling_clock
    try:
        scenario.run(loader)
    finally:
        clock = time.perf_counter
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions")
    parser.add_argument("--quick", action="store_true", help="300 steps x 3 repetitions")
    parser.add_argument("--no-lightning", action="store_true", help="skip the Lightning runs")
    parser.add_argument("--profile", metavar="SCENARIO", help="cProfile one scenario instead")
    parser.add_argument("--top", type=int, default=40, help="rows of the profile to print")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 300, 3
    torch.set_num_threads(1)
    silence_frameworks()
    chosen = scenarios(include_lightning=lightning_available() and not args.no_lightning)
    print(f"Machine: {machine_description()}")
    if args.profile:
        by_key = {s.key: s for s in chosen}
        if args.profile not in by_key:
            parser.error(f"--profile {args.profile!r}: choose one of {sorted(by_key)}")
        print(profile(by_key[args.profile], args.steps, args.top))
        return 0
    print(
        f"{args.steps} steps per run, {args.repeats} interleaved repetitions, batch {BATCH_SIZE}, "
        f"MLP {IN_FEATURES}->{HIDDEN}->{CLASSES}, SGD; wall time of the training epoch\n"
    )
    samples = measure(chosen, args.steps, args.repeats, warmup_steps=min(200, args.steps))
    print(format_table(samples, baseline=samples[0]))
    print()
    for sample in samples:
        print(f"  {sample.name}: {sample.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
