"""Train a classifier with DistributedDataParallel: two processes on the CPU by default.

Run from anywhere, either way:

    python examples/ddp/train.py [--fast-dev-run]              # fulmen starts the processes
    torchrun --nproc_per_node=2 examples/ddp/train.py          # torchrun starts them
"""

from __future__ import annotations

import argparse
import os
import sys

import config
from data import SyntheticDataModule
from model import Classifier

from fulmen import Trainer, seed_everything
from fulmen.loggers import TensorBoardLogger


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the few settings worth changing per run; the rest live in config.py."""
    parser = argparse.ArgumentParser(description="Train a classifier on two processes with DDP.")
    parser.add_argument("--output-dir", default=config.OUTPUT_DIR, help="logs and checkpoints")
    parser.add_argument("--max-epochs", type=int, default=config.MAX_EPOCHS)
    parser.add_argument("--devices", type=int, default=config.DEVICES)
    parser.add_argument(
        "--fast-dev-run", action="store_true", help="run one batch of each loop, write nothing"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fit on every process; print the results on the main one only."""
    args = parse_args(argv)
    # The same seed in every process: the models start with the same weights.
    seed_everything(config.SEED, workers=True)

    datamodule = SyntheticDataModule(
        num_features=config.NUM_FEATURES,
        num_classes=config.NUM_CLASSES,
        num_train=config.NUM_TRAIN,
        num_val=config.NUM_VAL,
        batch_size=config.BATCH_SIZE,
        seed=config.SEED,
    )
    model = Classifier(
        num_features=config.NUM_FEATURES,
        num_classes=config.NUM_CLASSES,
        hidden_dim=config.HIDDEN_DIM,
        lr=config.LR,
    )
    trainer = Trainer(
        accelerator=config.ACCELERATOR,
        devices=args.devices,
        strategy=config.STRATEGY,
        max_epochs=args.max_epochs,
        default_root_dir=args.output_dir,
        logger=TensorBoardLogger(save_dir=args.output_dir),
        log_every_n_steps=config.LOG_EVERY_N_STEPS,
        fast_dev_run=args.fast_dev_run,
    )
    trainer.fit(model, datamodule=datamodule)

    # trainer.print prints on global rank 0 only; the other processes stay silent.
    trainer.print(f"world size: {trainer.world_size}")
    trainer.print(f"val_acc: {float(trainer.callback_metrics['val_acc']):.4f}")
    if not args.fast_dev_run:
        trainer.print(f"logs: {os.path.abspath(str(trainer.log_dir))}")
    return 0


if __name__ == "__main__":
    # The guard matters: with strategy="ddp", fulmen starts the other processes by running this
    # script again, and they must not start processes of their own.
    sys.exit(main())
