"""A two-rank training run that breaks on purpose (`python ddp_faults_script.py FAULT RANK OUT`).

FAULT is what rank RANK does at its sixth training step: `raise` an exception, `sigkill` itself,
`slow` (sleep 3 s once, then go on) or `stuck` (sleep far longer than the watchdog's timeout).
Just before, that rank prints `@@inject <unix time>` so the test can time how long the other
ranks take to stop. A run that ends writes `<OUT>/rank<r>.pt` with its final weights.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen as pl

FAULT_STEP = 5


class Model(pl.LightningModule):
    def __init__(self, fault: str, rank: int) -> None:
        super().__init__()
        self.fault, self.faulty_rank = fault, rank
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_rank == self.faulty_rank and self.global_step == FAULT_STEP:
            print(f"@@inject {time.time()}", flush=True)
            self.inject()
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss, sync_dist=True)
        return loss

    def inject(self) -> None:
        if self.fault == "raise":
            raise RuntimeError(f"rank {self.global_rank} fails on purpose")
        if self.fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == "slow":
            time.sleep(3)
        if self.fault == "stuck":
            time.sleep(300)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main() -> None:
    fault, rank, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    strategy = sys.argv[4] if len(sys.argv) > 4 else "ddp"
    pl.seed_everything(0, verbose=False)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=generator)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy=strategy, max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    model = Model(fault, rank)
    trainer.fit(model, data)
    torch.save(model.state_dict(), os.path.join(out, f"rank{trainer.global_rank}.pt"))


if __name__ == "__main__":
    main()
