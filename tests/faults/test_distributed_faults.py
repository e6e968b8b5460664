"""Two-rank runs (gloo, CPU) where one rank raises, is killed or is slow: nothing hangs or lingers.

Each case runs `ddp_faults_script.py` as a user would, times how long the other rank takes to
stop after the fault (the faulty rank prints the moment), checks the message the user gets, and
then looks through the whole process table for any process of the run still alive (every run
carries a marker in its environment, which orphaned ranks keep).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import torch

from tests.faults import ddp_faults_script
from tests.faults.conftest import FaultReport

SCRIPT = Path(ddp_faults_script.__file__)
ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN_S = 15.0  # "seconds, not the 30-minute collective timeout"
pytestmark = pytest.mark.timeout(200)


def _processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("FULMEN_FAULT_MARKER") == marker:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class Run:
    """One launch of the script: its output, exit code, and when its last process ended."""

    def __init__(self, tmp_path: Path, fault: str, rank: int, strategy: str, **env: str) -> None:
        self.marker = uuid.uuid4().hex
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("PL_", "MASTER_", "LOCAL_"))
        }
        environment.update(
            PYTHONPATH=os.pathsep.join([str(ROOT), environment.get("PYTHONPATH", "")]),
            OMP_NUM_THREADS="1",
            FULMEN_FAULT_MARKER=self.marker,
            **env,
        )
        command = [sys.executable, str(SCRIPT), fault, str(rank), str(tmp_path), strategy]
        self.process = subprocess.Popen(  # noqa: S603
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
            cwd=ROOT,
        )  # fmt: skip
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=150)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self.code = self.process.returncode
        # Ranks the main process started may outlive it (when it was the one killed).
        deadline = time.monotonic() + 30
        while _processes_with(self.marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.ended = time.time()
        self.left = _processes_with(self.marker)
        for process in self.left:
            process.kill()

    @property
    def stop_latency(self) -> float:
        """Seconds from the fault to the end of the run's last process."""
        found = re.search(r"@@inject ([0-9.]+)", self.stdout)
        assert found, f"the fault was never injected:\n{self.stderr[-3000:]}"
        return self.ended - float(found.group(1))


@pytest.mark.parametrize(
    ("fault", "rank", "strategy", "message"),
    [
        ("raise", 1, "ddp", re.escape("RuntimeError: rank 1 fails on purpose")),
        ("raise", 0, "ddp_spawn", re.escape("RuntimeError: rank 0 fails on purpose")),
        ("sigkill", 1, "ddp", re.escape("RankFailedError: fulmen: rank 1 (process ")),
        # Rank 1 learns it from its launcher being gone, or from the store rank 0 hosted.
        ("sigkill", 0, "ddp", r"the rank-0 process|lost contact with the other processes"),
        ("sigkill", 1, "ddp_spawn", re.escape("process 1 terminated with signal SIGKILL")),
    ],
)
def test_when_one_rank_fails_the_other_stops_within_seconds_and_says_why(
    tmp_path: Path, fault: str, rank: int, strategy: str, message: str, fault_report: FaultReport
) -> None:
    run = Run(tmp_path, fault, rank, strategy)
    latency = run.stop_latency
    said = re.search(message, run.stderr)
    print(f"{fault} on rank {rank} ({strategy}): every process ended {latency:.1f} s after it")
    fault_report.record(
        f"distributed: one rank {'raises' if fault == 'raise' else 'is SIGKILLed'}",
        injections=1,
        recovered=int(run.code != 0 and said and latency < STOP_WITHIN_S),
        processes_left=len(run.left),
    )
    assert run.code != 0
    assert said, run.stderr[-3000:]
    if fault == "raise":
        # The user's own frame is in the traceback the user sees.
        assert "in inject\n    raise RuntimeError(" in run.stderr
    assert latency < STOP_WITHIN_S
    assert not run.left, [p.cmdline() for p in run.left]
    assert not list(tmp_path.glob("rank*.pt"))  # no rank went on to the end


def test_a_much_slower_rank_only_slows_the_run_down(
    tmp_path: Path, fault_report: FaultReport
) -> None:
    # 3 s behind the other rank at one step, below the watchdog's timeout: not a failure.
    run = Run(tmp_path, "slow", 1, "ddp", FULMEN_WATCHDOG_TIMEOUT="30")
    finished = sorted(tmp_path.glob("rank*.pt"))
    same = len(finished) == 2 and all(
        torch.equal(a, b)
        for a, b in zip(
            torch.load(finished[0], weights_only=True).values(),
            torch.load(finished[1], weights_only=True).values(),
        )
    )
    fault_report.record(
        "distributed: one rank 3 s slower",
        injections=1,
        recovered=int(run.code == 0 and same),
        processes_left=len(run.left),
    )
    assert run.code == 0, run.stderr[-3000:]
    assert "stuck" not in run.stderr
    assert same
    assert not run.left


def test_a_rank_stuck_in_its_own_code_is_named_and_the_run_stops(
    tmp_path: Path, fault_report: FaultReport
) -> None:
    run = Run(tmp_path, "stuck", 1, "ddp", FULMEN_WATCHDOG_TIMEOUT="4")
    latency = run.stop_latency
    named = "rank 1 has not reached the collective the others wait in for 4 s" in run.stderr
    fault_report.record(
        "distributed: one rank stuck (watchdog 4 s)",
        injections=1,
        recovered=int(run.code != 0 and named and latency < 4 + STOP_WITHIN_S),
        processes_left=len(run.left),
    )
    assert run.code != 0
    assert named, run.stderr[-3000:]
    assert "rank 1: running (training batch 5 of epoch 0)" in run.stderr
    assert latency < 4 + STOP_WITHIN_S
    assert not run.left
