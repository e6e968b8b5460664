"""The per-step cost of `self.log`: fulmen with one `self.log(prog_bar=True)` per step against
the same fulmen run that does not log, interleaved in one process.

Tiny MLP (32->64->10), batch 64, CPU, one thread; logger, checkpointing, progress bar and model
summary off, so the only difference between the two runs is the logging call and the metric
bookkeeping it causes (values stay tensors; nothing is read back from the device per step).

    python benchmarks/bench_log_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import common  # noqa: F401  (puts this checkout's src/ first on sys.path)
import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen


class Model(fulmen.LightningModule):
    def __init__(self, log: bool) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
        )
        self.do_log = log
        self.seconds = 0.0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        if self.do_log:
            self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def on_train_epoch_start(self) -> None:
        self.seconds = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        self.seconds = time.perf_counter() - self.seconds


def run(log: bool, loader: DataLoader[Any], root: str) -> float:
    torch.manual_seed(0)
    model = Model(log)
    trainer = fulmen.Trainer(
        default_root_dir=root, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, loader)
    return model.seconds / len(loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repetitions")
    args = parser.parse_args()
    common.silence_frameworks()
    torch.set_num_threads(1)
    steps, repetitions = (300, 3) if args.quick else (2000, 7)
    data = TensorDataset(torch.randn(steps * 64, 32), torch.randint(0, 10, (steps * 64,)))
    loader = DataLoader(data, batch_size=64)
    times: dict[str, list[float]] = {"no log": [], "self.log": []}
    with tempfile.TemporaryDirectory() as root:
        run(False, loader, root)  # warm up
        for _ in range(repetitions):  # interleaved: drift on a shared machine hits both alike
            times["no log"].append(run(False, loader, root))
            times["self.log"].append(run(True, loader, root))
    base = statistics.median(times["no log"])
    print(f"{steps} steps per run, {repetitions} interleaved repetitions")
    print("| run | median µs/step | min–max µs/step | ratio to no log |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median * 1e6:.0f} | {min(values) * 1e6:.0f}–{max(values) * 1e6:.0f} "
            f"| {median / base:.3f}× |"
        )


if __name__ == "__main__":
    main()
