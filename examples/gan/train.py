"""Train the GAN on a ring of Gaussian clusters and report how well it covers them.

Run from anywhere: ``python examples/gan/train.py [--output-dir DIR] [--max-epochs N]
[--fast-dev-run]``.
"""

from __future__ import annotations

import argparse
import os
import sys

import config
from data import RingDataModule, ring_modes
from model import GAN

from fulmen import Trainer, seed_everything
from fulmen.loggers import TensorBoardLogger


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the few settings worth changing per run; the rest live in config.py."""
    parser = argparse.ArgumentParser(description="Train a small GAN on a ring of clusters.")
    parser.add_argument("--output-dir", default=config.OUTPUT_DIR, help="logs and checkpoints")
    parser.add_argument("--max-epochs", type=int, default=config.MAX_EPOCHS)
    parser.add_argument(
        "--fast-dev-run", action="store_true", help="run one batch of each loop, write nothing"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fit the GAN and print the sample quality and mode coverage of its last epoch."""
    args = parse_args(argv)
    seed_everything(config.SEED, workers=True)

    datamodule = RingDataModule(
        num_modes=config.NUM_MODES,
        radius=config.RADIUS,
        mode_std=config.MODE_STD,
        num_samples=config.NUM_SAMPLES,
        batch_size=config.BATCH_SIZE,
        seed=config.SEED,
    )
    model = GAN(
        modes=ring_modes(config.NUM_MODES, config.RADIUS),
        mode_std=config.MODE_STD,
        latent_dim=config.LATENT_DIM,
        hidden_dim=config.HIDDEN_DIM,
        lr=config.LR,
        betas=config.BETAS,
    )
    trainer = Trainer(
        max_epochs=args.max_epochs,
        default_root_dir=args.output_dir,
        logger=TensorBoardLogger(save_dir=args.output_dir),
        log_every_n_steps=config.LOG_EVERY_N_STEPS,
        fast_dev_run=args.fast_dev_run,
    )
    trainer.fit(model, datamodule=datamodule)

    metrics = trainer.callback_metrics
    print(f"quality: {float(metrics['quality']):.3f}")
    print(f"modes covered: {int(metrics['modes_covered'])} of {config.NUM_MODES}")
    # In manual optimization every optimizer.step() counts: two per batch here.
    print(f"optimizer steps: {trainer.global_step}")
    if not args.fast_dev_run:
        print(f"logs: {os.path.abspath(str(trainer.log_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
