"""SIGTERM mid-training: the batch finishes, `last.ckpt` is saved, and a resume continues exactly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    import fulmen
    from fulmen.callbacks import ModelCheckpoint
    from tests.behaviour.test_exact_resume import Noisy

    class Slow(Noisy):
        def training_step(self, batch, batch_idx):
            if self.global_step == 12 and sys.argv[2] == "stop":
                print("READY", flush=True)
                time.sleep(30)  # SIGTERM arrives here, in the middle of a batch
            return super().training_step(batch, batch_idx)

    fulmen.seed_everything(3, verbose=False)
    root = sys.argv[1]
    saver = ModelCheckpoint(dirpath=root + "/ckpts", save_last=True)
    trainer = fulmen.Trainer(default_root_dir=root, max_epochs=3, val_check_interval=0.5,
                             logger=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[saver])
    trainer.fit(Slow(), ckpt_path="last")
    torch.save(trainer.lightning_module.state_dict(), root + "/final.pt")
    """
)


def run(root: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", SCRIPT, str(root), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip


def test_sigterm_saves_last_and_the_resumed_run_matches_an_unbroken_one(tmp_path: Path) -> None:
    unbroken = run(tmp_path / "unbroken", "go")
    assert unbroken.wait(timeout=120) == 0, unbroken.stderr.read() if unbroken.stderr else ""

    stopped = run(tmp_path / "stopped", "stop")
    assert stopped.stdout is not None
    deadline = time.monotonic() + 60
    while stopped.stdout.readline().strip() != "READY":
        assert time.monotonic() < deadline and stopped.poll() is None
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=60) == 143
    assert (tmp_path / "stopped" / "ckpts" / "last.ckpt").exists()
    assert not (tmp_path / "stopped" / "final.pt").exists()

    resumed = run(tmp_path / "stopped", "go")  # the same command line, as a requeue would run it
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read() if resumed.stderr else ""
    expected = torch.load(tmp_path / "unbroken" / "final.pt", weights_only=True)
    got = torch.load(tmp_path / "stopped" / "final.pt", weights_only=True)
    assert all(torch.equal(got[k], v) for k, v in expected.items())
