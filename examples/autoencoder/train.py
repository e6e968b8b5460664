"""Train the Autoencoder on scikit-learn's digits; reconstructions are logged to TensorBoard.

Run from anywhere: ``python examples/autoencoder/train.py [--output-dir DIR] [--max-epochs N]
[--fast-dev-run]``.
"""

from __future__ import annotations

import argparse
import os
import sys

import config
from data import DigitImagesDataModule
from model import Autoencoder

from fulmen import Trainer, seed_everything
from fulmen.callbacks import ModelCheckpoint
from fulmen.loggers import TensorBoardLogger


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the few settings worth changing per run; the rest live in config.py."""
    parser = argparse.ArgumentParser(description="Train an autoencoder on 8x8 digits.")
    parser.add_argument("--output-dir", default=config.OUTPUT_DIR, help="logs and checkpoints")
    parser.add_argument("--max-epochs", type=int, default=config.MAX_EPOCHS)
    parser.add_argument(
        "--fast-dev-run", action="store_true", help="run one batch of each loop, write nothing"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fit the autoencoder and print the final validation loss and where the logs went."""
    args = parse_args(argv)
    seed_everything(config.SEED, workers=True)

    datamodule = DigitImagesDataModule(
        batch_size=config.BATCH_SIZE,
        num_workers=config.NUM_WORKERS,
        val_fraction=config.VAL_FRACTION,
        seed=config.SEED,
    )
    model = Autoencoder(
        hidden_dim=config.HIDDEN_DIM,
        code_dim=config.CODE_DIM,
        lr=config.LR,
        num_images=config.NUM_IMAGES,
    )
    trainer = Trainer(
        max_epochs=args.max_epochs,
        default_root_dir=args.output_dir,
        logger=TensorBoardLogger(save_dir=args.output_dir),
        callbacks=[ModelCheckpoint(monitor="val_loss", filename="{epoch}-{val_loss:.4f}")],
        log_every_n_steps=config.LOG_EVERY_N_STEPS,
        fast_dev_run=args.fast_dev_run,
    )
    trainer.fit(model, datamodule=datamodule)

    print(f"val_loss: {float(trainer.callback_metrics['val_loss']):.4f}")
    if not args.fast_dev_run:
        print(f"logs: {os.path.abspath(str(trainer.log_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
