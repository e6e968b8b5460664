"""The training runs the benchmarks compare: one model, its data, and three ways to train it.

A `Workload` is an MLP, a batch size and SGD. `hand_runner` trains it with a plain PyTorch loop
(the limit); `framework_runner` trains the same network, data and optimizer with fulmen or
Lightning. Each runner trains one epoch over the loader it is given and returns the epoch's wall
time: for the frameworks, from `on_train_epoch_start` to `on_train_epoch_end` (a callback reads
the clock), for the hand loop the same span around its `for` loop. `measure` runs scenarios
interleaved after a warm-up, so the drift of a shared machine hits all of them alike.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from common import Samples, collect_garbage, output_to_devnull
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# What the runs are timed with (a module global, so a harness may swap it for another counter).
clock: Callable[[], float] = time.perf_counter

# Every switch that costs time per step, off: what the issue calls "everything off".
ALL_OFF: dict[str, Any] = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "limit_val_batches": 0,
}

Loader = DataLoader[tuple[torch.Tensor, ...]]
Runner = Callable[[Loader], float]


@dataclass(frozen=True)
class Workload:
    """An MLP (`widths[0]` inputs, ReLU between layers, `widths[-1]` classes) trained with SGD."""

    widths: tuple[int, ...]
    batch_size: int
    learning_rate: float = 0.01

    def describe(self) -> str:
        return f"MLP {'->'.join(map(str, self.widths))}, batch {self.batch_size}, SGD"

    def network(self) -> nn.Module:
        """Build the MLP with the same initial weights every time."""
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        for inputs, outputs in zip(self.widths, self.widths[1:]):
            layers += [nn.Linear(inputs, outputs), nn.ReLU()]
        return nn.Sequential(*layers[:-1])

    def loader(self, steps: int) -> Loader:
        """Build a loader of `steps` batches of synthetic data, generated up front."""
        generator = torch.Generator().manual_seed(0)
        rows = steps * self.batch_size
        inputs = torch.randn(rows, self.widths[0], generator=generator)
        targets = torch.randint(0, self.widths[-1], (rows,), generator=generator)
        return DataLoader(TensorDataset(inputs, targets), batch_size=self.batch_size)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so the clock reads the end of real work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_runner(workload: Workload, device: torch.device) -> Runner:
    """Build a run of one epoch with plain PyTorch."""

    def run(loader: Loader) -> float:
        network = workload.network().to(device)
        network.train()
        optimizer = torch.optim.SGD(network.parameters(), lr=workload.learning_rate)
        move = device.type != "cpu"  # the CPU loop stays the bare minimum
        synchronize(device)
        start = clock()
        for inputs, targets in loader:
            if move:
                inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(network(inputs), targets)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        synchronize(device)
        return clock() - start

    return run


def module_class(base: type[Any], workload: Workload, log_loss: bool) -> type[Any]:
    """Subclass `base` (a LightningModule class) into the benchmark's module."""

    class BenchModule(base):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.network = workload.network()

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.network(inputs)  # type: ignore[no-any-return]

        def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
            inputs, targets = batch
            loss = F.cross_entropy(self.network(inputs), targets)
            if log_loss:
                self.log("loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=workload.learning_rate)

    return BenchModule


def timer_class(base: type[Any], device: torch.device) -> type[Any]:
    """Subclass `base` (a Callback class) into a callback that times the training epoch."""

    class EpochTimer(base):  # type: ignore[misc]
        def __init__(self) -> None:
            self.start = self.end = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            synchronize(device)
            self.start = clock()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            synchronize(device)
            self.end = clock()

    return EpochTimer


def accelerator_arguments(device: torch.device) -> dict[str, Any]:
    """Trainer arguments that put the run on `device`, in both frameworks' spelling."""
    return {"accelerator": "gpu" if device.type == "cuda" else "cpu", "devices": 1}


def framework_runner(
    framework: Any,
    workload: Workload,
    trainer_kwargs: dict[str, Any],
    log_loss: bool,
    device: torch.device,
    callbacks: Sequence[Any] = (),
) -> Runner:
    """Build a run of one epoch under `framework` (fulmen or pytorch_lightning).

    `trainer_kwargs` may override the accelerator and devices chosen for `device`.
    """
    module_type = module_class(framework.LightningModule, workload, log_loss)
    timer_type = timer_class(framework.Callback, device)

    def run(loader: Loader) -> float:
        with tempfile.TemporaryDirectory() as root:
            timer = timer_type()
            with output_to_devnull():
                trainer = framework.Trainer(
                    max_epochs=1,
                    default_root_dir=root,
                    callbacks=[timer, *callbacks],
                    **{**accelerator_arguments(device), **trainer_kwargs},
                )
                trainer.fit(module_type(), train_dataloaders=loader)
            # Under DDP each process trains on its share of the batches.
            expected = len(loader) // trainer.world_size
            if trainer.global_step != expected:
                raise RuntimeError(f"ran {trainer.global_step} steps, expected {expected}")
            return float(timer.end - timer.start)

    return run


@dataclass
class Scenario:
    """One way of training the workload, with its name in the table."""

    key: str
    description: str
    run: Runner


def standard_scenarios(
    workload: Workload, include_lightning: bool, device: torch.device | None = None
) -> list[Scenario]:
    """List hand, fulmen off/full and (optionally) Lightning off/full; the hand loop first."""
    import fulmen

    device = device or torch.device("cpu")
    frameworks: list[tuple[str, Any]] = [("fulmen", fulmen)]
    if include_lightning:
        import pytorch_lightning

        frameworks.append(("lightning", pytorch_lightning))
    found = [Scenario("hand", "hand-written loop (the limit)", hand_runner(workload, device))]
    for key, framework in frameworks:
        name = "Lightning" if key == "lightning" else key
        found += [
            Scenario(
                f"{key}-off",
                f"{name}, everything off",
                framework_runner(framework, workload, ALL_OFF, False, device),
            ),
            Scenario(
                f"{key}-full",
                f"{name}, defaults + self.log",
                framework_runner(framework, workload, {}, True, device),
            ),
        ]
    return found


def measure(
    chosen: Sequence[Scenario], loader: Loader, repeats: int, warmup: Loader
) -> list[Samples]:
    """Warm every scenario up, then time them interleaved; return µs per step per repetition."""
    for scenario in chosen:
        scenario.run(warmup)
    samples = [Samples(s.key, s.description) for s in chosen]
    for _ in range(repeats):
        for scenario, sample in zip(chosen, samples):
            collect_garbage()
            sample.values.append(scenario.run(loader) / len(loader) * 1e6)
    return samples
