"""A training script the distributed tests run in several processes (`python ddp_script.py MODE`).

Each rank writes what it ended with to `<out>/rank<r>.json`, so the test can compare ranks with
each other and with a single-process run of the same model (`build`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import torch
import torchmetrics
from torch.utils.data import DataLoader, TensorDataset

import fulmen as pl
from fulmen.callbacks import ModelCheckpoint
from fulmen.loggers import CSVLogger

N_TRAIN, N_VAL, BATCH = 64, 13, 4


class Regression(pl.LightningModule):
    def __init__(self, mode: str = "fit") -> None:
        super().__init__()
        self.mode = mode
        self.layer = torch.nn.Linear(4, 1)
        self.val_count = torchmetrics.SumMetric()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.mode == "fail" and self.global_rank == 1 and batch_idx == 3:
            raise ValueError("rank 1 fails on purpose")
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss, sync_dist=True)
        self.log("rank", float(self.global_rank), sync_dist=True, on_epoch=True)
        if self.mode == "preempt":
            time.sleep(0.05)
            if self.global_rank == 0 and self.global_step == 20:
                print("READY", flush=True)
        if self.mode == "diverge":
            self.log(f"only_on_rank_{self.global_rank}", 1.0, sync_dist=True)
        if self.mode == "hang" and self.global_rank == 0 and batch_idx == 2:
            self.log("only_rank_0", 1.0, sync_dist=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), sync_dist=True)
        self.log("val_seen", float(len(x)), reduce_fx="sum", sync_dist=True)
        self.val_count.update(torch.ones(len(x)))
        self.log("val_count", self.val_count)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def data(batch_size: int) -> tuple[DataLoader[Any], DataLoader[Any]]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN, 4, generator=generator)
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(N_TRAIN, 1, generator=generator)
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    val = DataLoader(TensorDataset(x[:N_VAL], y[:N_VAL]), batch_size=BATCH)
    return train, val


def build(
    mode: str, out: str, max_epochs: int = 2, **trainer_kwargs: Any
) -> tuple[pl.Trainer, Regression]:
    pl.seed_everything(0, verbose=False)
    model = Regression(mode)
    trainer = pl.Trainer(
        accelerator=os.environ.get("FULMEN_TEST_ACCELERATOR", "cpu"),
        max_epochs=max_epochs,
        logger=CSVLogger(out, name="logs"),
        callbacks=[ModelCheckpoint(dirpath=os.path.join(out, "ckpts"), monitor="val_loss")],
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    return trainer, model


def _full(param: torch.Tensor) -> torch.Tensor:
    # FSDP keeps a shard per rank; gathering it is a collective every rank joins here.
    return param.full_tensor() if hasattr(param, "full_tensor") else param


def main() -> None:
    mode, strategy, out = sys.argv[1], sys.argv[2], sys.argv[3]
    kwargs: dict[str, Any] = {"strategy": strategy, "devices": 2}
    ckpt_path = None
    if strategy == "torchrun-nodes":
        kwargs = {"devices": 1, "num_nodes": 2}
    elif strategy.startswith("fsdp"):
        from fulmen.strategies import FSDPStrategy

        state = "full" if strategy == "fsdp" else "sharded"
        kwargs["strategy"] = FSDPStrategy(state_dict_type=state)
        if strategy == "fsdp_resume_on_one":
            kwargs.update(devices=1, max_epochs=3)
            ckpt_path = sys.argv[4]
    if mode == "preempt":
        kwargs["max_epochs"] = 1000
    trainer, model = build(mode, out, **kwargs)
    world = kwargs["devices"] * kwargs.get("num_nodes", 1)
    train, val = data(BATCH * 2 // world)  # the same global batch on any number of ranks
    trainer.fit(model, train, val, ckpt_path=ckpt_path)
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    validated = trainer.validate(model, val, verbose=False)
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "weights": [_full(p).detach().flatten().tolist() for p in model.parameters()],
        "metrics": fit_metrics,
        "validated": validated,
        "global_step": trainer.global_step,
        "best_model_path": trainer.checkpoint_callback.best_model_path,  # type: ignore[union-attr]
    }
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main()
