"""Checkpoint save and load against `torch.save` / `torch.load` of the same objects.

The model is the compute-bound MLP of `bench_compute_bound.py` (four hidden layers of 1024
units) trained two steps with Adam, so a checkpoint holds the weights and two Adam buffers per
weight: about 50 MB. Per repetition, interleaved:

- hand save: `torch.save(checkpoint, path)` of the dict fulmen saves (read back from fulmen's
  file beforehand, so the same keys, tensors and sizes);
- fulmen save: `trainer.save_checkpoint(path)`: builds the dict, writes it with `torch.save`
  (which computes the zip CRCs that loading checks) to a temporary file and renames that into
  place. Not included: flushing the file to disk (fsync), which a helper thread does after the
  call returns; the next save, a removal or the end of the run waits for it;
- until durable: the same two, each followed by what makes its file survive a power loss
  (hand: `torch.save` to an open file, then `os.fsync`; fulmen: waiting for its helper thread
  through `checkpoint_io.teardown()`), for scale;
- Lightning save: its `trainer.save_checkpoint(path)` (its own dict, the same tensors; it does
  not flush to disk);
- loads: `torch.load(path, weights_only=True)` of the hand file against each framework's
  `TorchCheckpointIO().load_checkpoint(path)` of its own file (fulmen's checks the zip CRCs
  first).

Every save goes to a new file (removed afterwards) after `os.sync()`, so no run pays for the
write-back of the one before; every load reads a file that is in the OS cache.

    python benchmarks/bench_checkpoint.py                  # 9 repetitions
    python benchmarks/bench_checkpoint.py --no-lightning   # fulmen and hand only
    python benchmarks/bench_checkpoint.py --quick          # a 64-wide MLP
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from common import (
    Samples,
    base_parser,
    fmt,
    format_table,
    framework_modules,
    machine_description,
    output_to_devnull,
    paired_row,
    report,
    silence_frameworks,
    use_lightning,
)
from workloads import ALL_OFF, Workload, clock, module_class

SAVE_BUDGET = 1.10


def trained_trainer(framework: Any, workload: Workload, root: str) -> Any:
    """Train the workload two steps with Adam under `framework`; return its trainer."""

    class AdamModule(module_class(framework.LightningModule, workload, log_loss=False)):  # type: ignore[misc]
        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    with output_to_devnull():
        trainer = framework.Trainer(
            default_root_dir=root, max_steps=2, accelerator="cpu", devices=1, **ALL_OFF
        )
        trainer.fit(AdamModule(), train_dataloaders=workload.loader(2))
    return trainer


def save_and_fsync(checkpoint: dict[str, Any], path: str) -> None:
    """Save with `torch.save` and flush the file to disk."""
    with open(path, "wb") as stream:
        torch.save(checkpoint, stream)
        stream.flush()
        os.fsync(stream.fileno())


def save_and_wait(trainer: Any, path: str) -> None:
    """Save through the trainer and wait until its checkpoint IO has flushed the file to disk."""
    trainer.save_checkpoint(path)
    trainer.strategy.checkpoint_io.teardown()


def timed(action: Callable[[], object]) -> float:
    """Return the seconds `action` takes, starting with no dirty pages of earlier writes."""
    os.sync()
    start = clock()
    action()
    return clock() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repetitions")
    args = parser.parse_args(argv)
    width = 64 if args.quick else 1024
    if args.quick:
        args.repeats = 1
    workload = Workload(widths=(width,) * 5 + (10,), batch_size=256)
    torch.set_num_threads(1)
    silence_frameworks(*framework_modules(args))
    import fulmen
    from fulmen.plugins.io import TorchCheckpointIO
    from fulmen.utilities.checksum import CHECKSUM_KEY

    frameworks: dict[str, Any] = {"fulmen": fulmen}
    loaders: dict[str, Any] = {"fulmen": TorchCheckpointIO()}
    if use_lightning(args):
        import pytorch_lightning
        from pytorch_lightning.plugins.io import TorchCheckpointIO as LightningCheckpointIO

        frameworks["lightning"] = pytorch_lightning
        loaders["lightning"] = LightningCheckpointIO()

    with tempfile.TemporaryDirectory() as root:
        trainers = {key: trained_trainer(fw, workload, root) for key, fw in frameworks.items()}
        reference = os.path.join(root, "reference.ckpt")
        trainers["fulmen"].save_checkpoint(reference)
        checkpoint = torch.load(reference, weights_only=False)
        checkpoint.pop(CHECKSUM_KEY, None)  # only there when torch's compute_crc32 is off
        size_mb = os.path.getsize(reference) / 1e6
        print(f"Machine: {machine_description()}")
        print(
            f"{args.repeats} interleaved repetitions; {workload.describe()} with Adam: "
            f"a {size_mb:.1f} MB checkpoint; ms\n"
        )
        saves = {"hand": Samples("hand", "torch.save")}
        saves.update({key: Samples(key, "trainer.save_checkpoint") for key in frameworks})
        loads = {key: Samples(key, "") for key in saves}
        durable = {
            "hand": Samples("hand", "torch.save + fsync"),
            "fulmen": Samples("fulmen", "trainer.save_checkpoint + its flush"),
        }
        fulmen_trainer = trainers["fulmen"]
        for repetition in range(args.repeats):
            paths = {key: os.path.join(root, f"{key}-{repetition}.ckpt") for key in saves}
            saves["hand"].values.append(timed(partial(torch.save, checkpoint, paths["hand"])))
            for key, trainer in trainers.items():
                saves[key].values.append(timed(partial(trainer.save_checkpoint, paths[key])))
            fulmen_trainer.strategy.checkpoint_io.teardown()  # not timed: see the docstring
            synced = os.path.join(root, f"durable-{repetition}.ckpt")
            durable["hand"].values.append(timed(partial(save_and_fsync, checkpoint, synced)))
            durable["fulmen"].values.append(
                timed(partial(save_and_wait, fulmen_trainer, synced + "-fulmen"))
            )
            paths["durable"], paths["durable-fulmen"] = synced, synced + "-fulmen"
            loads["hand"].values.append(
                timed(partial(torch.load, paths["hand"], map_location="cpu", weights_only=True))
            )
            for key, io in loaders.items():
                loads[key].values.append(timed(partial(io.load_checkpoint, paths[key])))
            for path in paths.values():
                os.remove(path)
    for samples in (*saves.values(), *loads.values(), *durable.values()):
        samples.values = [seconds * 1000 for seconds in samples.values]
    print("save:\n\n" + format_table(list(saves.values()), saves["hand"], unit="ms"))
    print(
        "\nsave until on disk:\n\n"
        + format_table(list(durable.values()), durable["hand"], unit="ms")
    )
    print("\nload:\n\n" + format_table(list(loads.values()), loads["hand"], unit="ms"))
    report(
        [
            paired_row(
                "checkpoint save (hand: torch.save of the same dict)",
                saves["hand"],
                saves["fulmen"],
                saves.get("lightning"),
                SAVE_BUDGET,
                unit="ms",
                note=f"{fmt(size_mb)} MB",
            ),
            paired_row(
                "checkpoint save until on disk (hand: torch.save + fsync)",
                durable["hand"],
                durable["fulmen"],
                None,
                None,
                unit="ms",
                note=f"{fmt(size_mb)} MB",
            ),
            paired_row(
                "checkpoint load (hand: torch.load)",
                loads["hand"],
                loads["fulmen"],
                loads.get("lightning"),
                None,
                unit="ms",
                note=f"{fmt(size_mb)} MB",
            ),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
