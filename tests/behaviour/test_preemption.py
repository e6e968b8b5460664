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
                time.sleep(3)  # SIGTERM arrives here, in the middle of a batch
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


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """Wait for the process, read what is left of its output and close its pipes."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, stderr


def test_sigterm_saves_last_and_the_resumed_run_matches_an_unbroken_one(tmp_path: Path) -> None:
    code, stderr = finish(run(tmp_path / "unbroken", "go"), timeout=120)
    assert code == 0, stderr

    stopped = run(tmp_path / "stopped", "stop")
    assert stopped.stdout is not None
    deadline = time.monotonic() + 60
    while stopped.stdout.readline().strip() != "READY":
        if time.monotonic() > deadline or stopped.poll() is not None:
            finish(stopped, timeout=5)
            raise AssertionError("the training process never reached the slow batch")
    stopped.send_signal(signal.SIGTERM)
    code, stderr = finish(stopped, timeout=60)
    assert code == 143, stderr
    assert (tmp_path / "stopped" / "ckpts" / "last.ckpt").exists()
    assert not (tmp_path / "stopped" / "final.pt").exists()

    # The same command line again, as a requeued job would run it.
    code, stderr = finish(run(tmp_path / "stopped", "go"), timeout=120)
    assert code == 0, stderr
    expected = torch.load(tmp_path / "unbroken" / "final.pt", weights_only=True)
    got = torch.load(tmp_path / "stopped" / "final.pt", weights_only=True)
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_slurm_sigusr1_saves_requeues_the_job_and_the_requeued_run_resumes(
    tmp_path: Path,
) -> None:
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.log\n')
    scontrol.chmod(0o755)
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    env = {**os.environ, **slurm}
    command = [sys.executable, "-c", SCRIPT, str(tmp_path / "job"), "stop"]
    job = subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert job.stdout is not None
    deadline = time.monotonic() + 60
    while job.stdout.readline().strip() != "READY":
        if time.monotonic() > deadline or job.poll() is not None:
            finish(job, timeout=5)
            raise AssertionError("the training process never reached the slow batch")
    job.send_signal(signal.SIGUSR1)  # what SLURM sends before the time limit (--signal=USR1@90)
    code, stderr = finish(job, timeout=60)
    assert code == 143, stderr
    assert (tmp_path / "job" / "ckpts" / "last.ckpt").exists()
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
