"""SIGKILL a training run at random moments: every `*.ckpt` left behind must load and verify.

`ModelCheckpoint(every_n_train_steps=1, save_top_k=2, save_last=True)` writes two files and
removes one at nearly every step, so random kills land in the middle of writes, renames and
removals. Starting Python and importing torch takes seconds, so one "zygote" subprocess imports
everything and warms up once, then forks a fresh training process for each kill.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import fulmen
from fulmen.utilities.checksum import check_and_strip_checksum

KILLS = 32
SEED = 20240607
MAX_KILL_DELAY_S = 0.25  # after the child reports that training started
TOTAL_BUDGET_S = 55.0

ZYGOTE = r"""
import os, signal, sys

import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen as pl
from fulmen.callbacks import ModelCheckpoint

torch.set_num_threads(1)  # forked children must not inherit a thread pool


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        # About 1.3 MB of weights (plus momentum), so each save takes a noticeable while.
        self.net = torch.nn.Sequential(
            torch.nn.Linear(32, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
            torch.nn.ReLU(), torch.nn.Linear(512, 1),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(64, 32, generator=generator), torch.randn(64, 1, generator=generator))
        return DataLoader(data, batch_size=8, shuffle=True)

    def on_train_start(self):
        if self.trainer.max_steps < 0:
            print(f"@@ready {os.getpid()}", flush=True)


def train(folder, max_steps=-1):
    checkpoint = ModelCheckpoint(
        dirpath=folder, every_n_train_steps=1, save_top_k=2, save_last=True, monitor="train_loss"
    )
    trainer = pl.Trainer(
        default_root_dir=folder, max_epochs=-1, max_steps=max_steps, logger=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[checkpoint],
    )
    trainer.fit(Model())


# Warm up every lazy import (optimizers import torch._dynamo) once, before forking.
train(sys.argv[1], max_steps=2)
print("@@zygote", flush=True)
for line in sys.stdin:
    command, argument = line.split()
    if command == "run":
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)  # never outlive a test that died
            try:
                train(argument)
            finally:
                os._exit(1)
        print(f"@@child {pid}", flush=True)
    elif command == "reap":
        _, status = os.waitpid(int(argument), 0)
        print(f"@@reaped {argument} {status}", flush=True)
"""


class Zygote:
    """Talks to the zygote subprocess through its stdin and the `@@` lines of its stdout."""

    def __init__(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        self.process = process
        self.deadline = deadline
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        assert process.stdout is not None
        self.selector.register(process.stdout, selectors.EVENT_READ)

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        self.process.stdin.flush()

    def expect(self, word: str) -> list[str]:
        """Wait for the next `@@<word> ...` line (other output is ignored); return its fields."""
        assert self.process.stdout is not None
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                fields = line.decode(errors="replace").split()
                if fields and fields[0] == f"@@{word}":
                    return fields[1:]
            remaining = self.deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for @@{word} from the zygote"
            if self.selector.select(timeout=min(remaining, 1.0)):
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"the zygote exited (code {self.process.poll()}) before @@{word}"
                self.buffer += chunk


def check_checkpoints(folder: Path) -> int:
    paths = sorted(folder.glob("*.ckpt"))
    for path in paths:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        check_and_strip_checksum(checkpoint, path)
        assert checkpoint["global_step"] >= 1, path
        assert "state_dict" in checkpoint and "optimizer_states" in checkpoint, path
    return len(paths)


def test_checkpoints_survive_sigkill_at_random_moments(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    src = str(Path(fulmen.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    log_path = tmp_path / "zygote.log"
    kills = files_checked = interrupted_writes = 0
    child = None
    with (
        open(log_path, "wb") as log,
        subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, str(tmp_path / "warmup")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        ) as process,
    ):
        zygote = Zygote(process, deadline=started + TOTAL_BUDGET_S)
        try:
            zygote.expect("zygote")
            for kill in range(KILLS):
                folder = tmp_path / f"run{kill:02d}"
                zygote.send(f"run {folder}")
                child = int(zygote.expect("child")[0])
                assert int(zygote.expect("ready")[0]) == child
                time.sleep(rng.uniform(0.0, MAX_KILL_DELAY_S))
                os.kill(child, signal.SIGKILL)
                zygote.send(f"reap {child}")
                status = int(zygote.expect("reaped")[1])
                child = None
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                    f"run {kill} ended by itself (status {status}) before it was killed"
                )
                kills += 1
                files_checked += check_checkpoints(folder)
                interrupted_writes += len(list(folder.glob("*.tmp")))
        except BaseException:
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            if child is not None:
                os.kill(child, signal.SIGKILL)
            process.kill()
    elapsed = time.monotonic() - started
    print(
        f"kills: {kills}, checkpoint files checked: {files_checked}, kills that interrupted a "
        f"write (temporary file left): {interrupted_writes}, {elapsed:.1f} s"
    )
    assert kills >= 30
    assert files_checked >= kills  # every run lived long enough to save something
    assert elapsed < 60
