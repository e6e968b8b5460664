"""Train DigitsClassifier on scikit-learn's handwritten digits, then test the best checkpoint.

Run from anywhere: ``python examples/digits/train.py [--output-dir DIR] [--max-epochs N]``.
"""

from __future__ import annotations

import argparse
import os
import sys

import config
from data import DigitsDataModule
from model import DigitsClassifier

from fulmen import Trainer, seed_everything
from fulmen.callbacks import EarlyStopping, ModelCheckpoint
from fulmen.loggers import TensorBoardLogger


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the few settings worth changing per run; the rest live in config.py."""
    parser = argparse.ArgumentParser(description="Train a digits classifier, then test it.")
    parser.add_argument("--output-dir", default=config.OUTPUT_DIR, help="logs and checkpoints")
    parser.add_argument("--max-epochs", type=int, default=config.MAX_EPOCHS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fit, test the best checkpoint and return a non-zero exit code if accuracy is too low."""
    args = parse_args(argv)
    seed_everything(config.SEED, workers=True)

    datamodule = DigitsDataModule(
        batch_size=config.BATCH_SIZE,
        num_workers=config.NUM_WORKERS,
        val_fraction=config.VAL_FRACTION,
        test_fraction=config.TEST_FRACTION,
        seed=config.SEED,
    )
    model = DigitsClassifier(
        hidden_dim=config.HIDDEN_DIM,
        dropout=config.DROPOUT,
        lr=config.LR,
        weight_decay=config.WEIGHT_DECAY,
        lr_patience=config.LR_PATIENCE,
        lr_factor=config.LR_FACTOR,
    )

    checkpoint = ModelCheckpoint(monitor="val_acc", mode="max", filename="{epoch}-{val_acc:.4f}")
    trainer = Trainer(
        max_epochs=args.max_epochs,
        default_root_dir=args.output_dir,
        logger=TensorBoardLogger(save_dir=args.output_dir),
        callbacks=[EarlyStopping(monitor="val_loss", patience=config.PATIENCE), checkpoint],
        log_every_n_steps=config.LOG_EVERY_N_STEPS,
    )
    trainer.fit(model, datamodule=datamodule)
    results = trainer.test(ckpt_path="best", datamodule=datamodule)

    accuracy = float(results[0]["test_acc"])
    print(f"test accuracy: {accuracy:.4f}")
    print(f"best checkpoint: {os.path.abspath(checkpoint.best_model_path)}")
    print(f"logs: {os.path.abspath(str(trainer.log_dir))}")
    if accuracy < config.MIN_TEST_ACCURACY:
        print(
            f"error: test accuracy {accuracy:.4f} is below the expected "
            f"{config.MIN_TEST_ACCURACY:.2f}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
