"""SIGTERM and Ctrl+C (SIGINT) during fit: the batch finishes, `last.ckpt` is saved, loggers are
finalized, the process ends with the documented status, and the same command resumes exactly.

Documented statuses: SIGTERM ends the process with exit code 143; Ctrl+C lets `KeyboardInterrupt`
reach the user's script, which Python ends by SIGINT (130 in a shell).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fulmen.plugins.io import TorchCheckpointIO
from tests.faults.conftest import FaultReport, leftover_processes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)

SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    import fulmen
    from fulmen.callbacks import Callback, ModelCheckpoint
    from fulmen.loggers import CSVLogger
    from tests.behaviour.test_exact_resume import Noisy

    class Slow(Noisy):
        def training_step(self, batch, batch_idx):
            if self.global_step == 9 and sys.argv[2] == "stop":
                print("READY", flush=True)
                time.sleep(3)  # the signal arrives here, in the middle of a batch
            return super().training_step(batch, batch_idx)

    class Finalized(CSVLogger):
        def finalize(self, status):
            super().finalize(status)
            print(f"FINALIZED {status}", flush=True)

    fulmen.seed_everything(3, verbose=False)
    root = sys.argv[1]
    trainer = fulmen.Trainer(
        default_root_dir=root, max_epochs=2, val_check_interval=0.5, log_every_n_steps=1,
        logger=Finalized(root), enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=root + "/ckpts", save_last=True)],
    )
    trainer.fit(Slow(), ckpt_path="last")
    torch.save(trainer.lightning_module.state_dict(), root + "/final.pt")
    """
)


def start(root: Path, mode: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", SCRIPT, str(root), mode], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return process.returncode, stdout, stderr


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    root = tmp_path_factory.mktemp("unbroken")
    code, _, stderr = finish(start(root, "go"))
    assert code == 0, stderr
    return torch.load(root / "final.pt", weights_only=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("sent", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)]
)
def test_a_signal_saves_finalizes_exits_as_documented_and_resumes_exactly(
    tmp_path: Path,
    unbroken: dict[str, torch.Tensor],
    sent: signal.Signals,
    status: int,
    fault_report: FaultReport,
) -> None:
    process = start(tmp_path, "stop")
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    while process.stdout.readline().strip() != "READY":
        if time.monotonic() > deadline or process.poll() is not None:
            finish(process, timeout=5)
            raise AssertionError("the training process never reached the slow batch")
    started = time.monotonic()
    process.send_signal(sent)
    code, stdout, stderr = finish(process)
    stopped_after = time.monotonic() - started

    problems = []
    if code != status:
        problems.append(f"exit status {code}, documented {status}")
    last = tmp_path / "ckpts" / "last.ckpt"
    try:
        saved_step = TorchCheckpointIO().load_checkpoint(last)["global_step"]
        if saved_step != 10:  # the batch the signal interrupted finished first
            problems.append(f"last.ckpt saved at step {saved_step}, not 10")
    except Exception as err:  # a missing or unreadable last.ckpt is the failure looked for
        problems.append(f"last.ckpt: {type(err).__name__}: {err}")
    if "FINALIZED failed" not in stdout.splitlines()[-1:]:
        problems.append(f"the logger was not finalized last: {stdout.splitlines()[-3:]}")
    with open(next(tmp_path.glob("lightning_logs/version_*/metrics.csv")), newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows or any(None in row.values() for row in rows):
        problems.append("metrics.csv is empty or has incomplete rows")
    if (tmp_path / "final.pt").exists():
        problems.append("the script went on after fit")

    code, _, resumed_stderr = finish(start(tmp_path, "go"))
    if code != 0:
        problems.append(f"the resumed run failed: {resumed_stderr[-2000:]}")
    else:
        got = torch.load(tmp_path / "final.pt", weights_only=True)
        if any(not torch.equal(got[key], value) for key, value in unbroken.items()):
            problems.append("the resumed run's weights differ from an unbroken run's")
    left = leftover_processes()
    fault_report.record(
        f"{sent.name} during fit, then resume",
        injections=1,
        recovered=int(not problems),
        processes_left=len(left),
    )
    assert not problems, "\n".join(problems) + f"\nstderr:\n{stderr[-3000:]}"
    assert stopped_after < 20  # the rest of the 3 s batch, then the save: no hang
    assert not left
