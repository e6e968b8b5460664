"""SIGKILL a training run at random moments, then resume it: nothing is lost, the result is exact.

Each trial starts a run that saves `top-2` and `last.ckpt` every step and logs every step to CSV
and TensorBoard, kills it with SIGKILL, and checks what the kill left: every checkpoint present
loads and verifies, `metrics.csv`, `hparams.yaml` and the event files read back. Then the same
command with `fit(ckpt_path="last")` runs to the end, and its final weights must be bitwise those
of a run that was never interrupted, the checkpoint folder must hold exactly the files the
uninterrupted run left (same names, same weights), and no temporary file may remain in it, in the
log folder or in `$TMPDIR`.

Kills land in five kinds of moment: at a random time, inside a training step, in the middle of a
checkpoint's bytes, around the rename that replaces `last.ckpt`, and around a logger's write.
The targeted ones are made by the run itself (it kills itself with SIGKILL at the n-th call of
the function in question), so each kind is certain to be covered. Every trial runs with the
checkpoint folder on the disk that holds `$TMPDIR` and on a tmpfs (`/dev/shm`): a rename is
atomic only within one filesystem.

Starting Python and importing torch takes seconds, so one "zygote" subprocess imports everything
and warms up once, then forks a fresh process for every run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import fulmen
from fulmen.plugins.io import TorchCheckpointIO
from tests.faults.conftest import FaultReport, leftover_processes

SEED = 20261128
TRIALS_PER_KIND = 5  # on each of the two filesystems
MAX_STEPS = 24
KINDS = {
    "random": "SIGKILL at a random moment",
    "step": "SIGKILL inside a training step",
    "save": "SIGKILL in the middle of a checkpoint write",
    "replace_last": "SIGKILL around the rename that replaces last.ckpt",
    "logger": "SIGKILL around a logger write",
}
pytestmark = pytest.mark.timeout(300)

ZYGOTE = r"""
import json, os, signal, sys, tempfile

import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen as pl
import fulmen.loggers.csv_logs as csv_logs
from fulmen.callbacks import ModelCheckpoint
from fulmen.loggers import CSVLogger, TensorBoardLogger

torch.set_num_threads(1)  # forked children must not inherit a thread pool
MAX_STEPS = int(sys.argv[2])


class Model(pl.LightningModule):
    def __init__(self, width=256):
        super().__init__()
        self.save_hyperparameters()
        # About 0.4 MB of weights plus momentum, so a save takes a noticeable while.
        self.net = torch.nn.Sequential(
            torch.nn.Linear(32, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
            torch.nn.ReLU(), torch.nn.Linear(width, 1),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        data = TensorDataset(
            torch.randn(48, 32, generator=generator), torch.randn(48, 1, generator=generator)
        )
        return DataLoader(data, batch_size=8, shuffle=True)

    def on_train_start(self):
        print(f"@@ready {os.getpid()}", flush=True)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def counting(target, name, at, before, matches=lambda *args: True):
    # Replace target.name by a wrapper that kills this process at its at-th matching call.
    original = getattr(target, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        hit = False
        if matches(*args):
            calls[0] += 1
            hit = calls[0] == at
        if hit and before:
            die()
        result = original(*args, **kwargs)
        if hit:
            die()
        return result

    setattr(target, name, wrapper)


class KillingStream:
    # Forwards writes to a file object and dies once `limit` bytes went through.
    def __init__(self, stream, limit):
        self.stream, self.limit, self.written = stream, limit, 0

    def write(self, data):
        room = self.limit - self.written
        if len(data) >= room:
            self.stream.write(bytes(memoryview(data)[:room]))
            self.stream.flush()
            die()
        self.written += len(data)
        return self.stream.write(data)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def inject(spec):
    kind, at, before, offset = spec["kind"], spec["at"], spec["before"], spec["offset"]
    if kind == "step":
        original = Model.training_step

        def training_step(self, batch, batch_idx):
            loss = original(self, batch, batch_idx)
            if self.global_step + 1 == at:
                die()  # after forward, before backward and the optimizer step
            return loss

        Model.training_step = training_step
    elif kind == "save":
        original_save, calls = torch.save, [0]

        def save(obj, f, *args, **kwargs):
            # Only the checkpoint files: a save into memory is not a write to kill.
            if not str(getattr(f, "name", "")).endswith(".tmp"):
                return original_save(obj, f, *args, **kwargs)
            calls[0] += 1
            if calls[0] == at:
                f = KillingStream(f, offset)
            return original_save(obj, f, *args, **kwargs)

        torch.save = save
    elif kind == "replace_last":
        counting(os, "replace", at, before, lambda src, dst, *a: str(dst).endswith("last.ckpt"))
    elif kind == "logger":
        counting(csv_logs, "append_to_file", at, before)


def train(spec):
    root = spec["root"]
    checkpoint = ModelCheckpoint(
        dirpath=spec["ckpt_dir"], every_n_train_steps=1, save_top_k=2, save_last=True,
        monitor="train_loss",
    )
    loggers = [
        CSVLogger(root, name="csv", flush_logs_every_n_steps=1),
        TensorBoardLogger(root, name="tb"),
    ]
    trainer = pl.Trainer(
        default_root_dir=root, max_steps=spec["max_steps"], logger=loggers, log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[checkpoint],
    )
    trainer.fit(Model(), ckpt_path=spec["ckpt_path"])
    return trainer


# Warm up every lazy import (optimizers import torch._dynamo) once, before forking.
train({"root": sys.argv[1], "ckpt_dir": sys.argv[1], "max_steps": 2, "ckpt_path": None})
print("@@zygote", flush=True)
for line in sys.stdin:
    command, argument = line.split(maxsplit=1)
    if command == "run":
        spec = json.loads(argument)
        pid = os.fork()
        if pid == 0:
            signal.alarm(60)  # never outlive a test that died
            code = 1
            try:
                os.environ["TMPDIR"] = tempfile.tempdir = spec["tmpdir"]
                if spec["inject"]:
                    inject(spec["inject"])
                trainer = train(spec)
                if spec["final"]:
                    torch.save(trainer.lightning_module.state_dict(), spec["final"])
                code = 0
            finally:
                sys.stdout.flush()
                os._exit(code)
        print(f"@@child {pid}", flush=True)
    elif command == "reap":
        _, status = os.waitpid(int(argument), 0)
        print(f"@@reaped {argument.strip()} {status}", flush=True)
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
        self.child: int | None = None

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

    def run(self, spec: dict[str, Any], kill_after: float | None = None) -> int:
        """Run one training process to its end (or kill it `kill_after` s after it is ready)."""
        self.send("run " + json.dumps(spec))
        self.child = int(self.expect("child")[0])
        if kill_after is not None:
            assert int(self.expect("ready")[0]) == self.child
            time.sleep(kill_after)
            os.kill(self.child, signal.SIGKILL)
        self.send(f"reap {self.child}")
        status = int(self.expect("reaped")[1])
        self.child = None
        return status

    def time_training(self, spec: dict[str, Any]) -> float:
        """Run to the end; return the seconds from the start of training to the process's end."""
        self.send("run " + json.dumps(spec))
        self.child = int(self.expect("child")[0])
        assert int(self.expect("ready")[0]) == self.child
        started = time.monotonic()
        self.send(f"reap {self.child}")
        status = int(self.expect("reaped")[1])
        self.child = None
        assert status == 0, f"the uninterrupted run failed (status {status})"
        return time.monotonic() - started


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    folder = tmp_path_factory.mktemp("zygote")
    src = str(Path(fulmen.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    log_path = folder / "zygote.log"
    with (
        open(log_path, "wb") as log,
        subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, str(folder / "warmup"), str(MAX_STEPS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        ) as process,
    ):
        helper = Zygote(process, deadline=time.monotonic() + 280)
        try:
            helper.expect("zygote")
            yield helper
        except BaseException:
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            if helper.child is not None:
                os.kill(helper.child, signal.SIGKILL)
            process.kill()


def _spec(root: Path, ckpt_dir: Path, **changes: Any) -> dict[str, Any]:
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    spec = {
        "root": str(root),
        "ckpt_dir": str(ckpt_dir),
        "tmpdir": str(root / "tmp"),
        "max_steps": MAX_STEPS,
        "ckpt_path": None,
        "inject": None,
        "final": None,
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def reference(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """An uninterrupted run: its folder (checkpoints, final weights) and its training time."""
    root = tmp_path_factory.mktemp("reference")
    seconds = zygote.time_training(_spec(root, root / "ckpts", final=str(root / "final.pt")))
    return root, seconds


def _checkpoints_intact(folder: Path) -> list[str]:
    """Return the problems of the checkpoint files in `folder` (none when all load and verify)."""
    problems = []
    io = TorchCheckpointIO()
    for path in sorted(folder.glob("*.ckpt")):
        try:
            checkpoint = io.load_checkpoint(path)
            assert checkpoint["global_step"] >= 1 and "optimizer_states" in checkpoint
        except Exception as err:  # any failure to load is what this suite looks for
            problems.append(f"{path.name}: {type(err).__name__}: {err}")
    return problems


def _logs_readable(root: Path) -> list[str]:
    """Return the problems of the log files under `root`: every row complete, every file parsed."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    problems = []
    for path in root.glob("csv/version_*/metrics.csv"):
        with open(path, newline="") as stream:
            for number, row in enumerate(csv.DictReader(stream), start=2):
                if None in row or None in row.values() or not row["step"].isdigit():
                    problems.append(f"{path}: line {number} is incomplete: {row}")
    for path in root.glob("*/version_*/hparams.yaml"):
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            problems.append(f"{path}: {err}")
    for path in root.glob("tb/version_*/events.out.tfevents.*"):
        try:
            for _ in EventFileLoader(str(path)).Load():
                pass
        except Exception as err:  # the reader must get through every complete record
            problems.append(f"{path}: {type(err).__name__}: {err}")
    return problems


def _temporary_files(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and (path.name.startswith(".") or ".tmp" in path.name):
                found.append(str(path))
            if path.name.endswith(".deleting"):
                found.append(str(path))
    return found


def _checkpoint_differences(got: Path, want: Path) -> tuple[list[str], list[str]]:
    """Compare two checkpoint folders: (files that differ in name, files that differ in weights)."""
    names = sorted(p.name for p in got.iterdir())
    expected = sorted(p.name for p in want.iterdir())
    listing = [] if names == expected else [f"folder holds {names}, uninterrupted: {expected}"]
    changed = []
    io = TorchCheckpointIO()
    for name in set(names) & set(expected):
        mine, theirs = io.load_checkpoint(got / name), io.load_checkpoint(want / name)
        for key, value in theirs["state_dict"].items():
            if not torch.equal(mine["state_dict"][key], value):
                changed.append(f"{name}: {key} differs from the uninterrupted run's")
    return listing, changed


def _injection(kind: str, rng: random.Random, size: int) -> dict[str, Any] | None:
    if kind == "random":
        return None
    # Calls per run: one step, about two checkpoint saves, one last.ckpt rename and one CSV
    # append per training step.
    # `size` is a checkpoint's size in bytes, so a cut always falls inside the file.
    at = rng.randint(2, MAX_STEPS - 2)
    return {
        "kind": kind,
        "at": at,
        "before": rng.random() < 0.5,
        "offset": rng.randint(1, size - 1),
    }


@pytest.mark.parametrize("filesystem", ["same", "tmpfs"])
def test_sigkill_at_any_moment_loses_nothing_and_resume_is_exact(
    zygote: Zygote,
    reference: tuple[Path, float],
    tmp_path: Path,
    filesystem: str,
    fault_report: FaultReport,
) -> None:
    if filesystem == "tmpfs" and not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this machine")
    rng = random.Random(f"{SEED}-{filesystem}")
    reference_root, training_seconds = reference
    want = torch.load(reference_root / "final.pt", weights_only=True)
    size = (reference_root / "ckpts" / "last.ckpt").stat().st_size
    shm = (
        Path(tempfile.mkdtemp(prefix="fulmen-faults-", dir="/dev/shm"))
        if filesystem == "tmpfs"
        else None
    )
    tally: dict[str, list[int]] = {kind: [0, 0, 0] for kind in KINDS}  # kills, recovered, lost
    failures: list[str] = []
    try:
        for trial, kind in enumerate([k for k in KINDS for _ in range(TRIALS_PER_KIND)]):
            root = tmp_path / f"trial{trial:02d}-{kind}"
            ckpt_dir = (shm / root.name) if shm else root / "ckpts"
            injection = _injection(kind, rng, size)
            # Anywhere in the training of the uninterrupted run (timed, as machines differ).
            kill_after = rng.uniform(0.0, 0.8 * training_seconds) if injection is None else None
            status = zygote.run(_spec(root, ckpt_dir, inject=injection), kill_after=kill_after)
            while kill_after is not None and status == 0 and kill_after > 0.01:
                # This run was faster than the timed one (the machine's load changed) and ended
                # before the kill: start afresh and kill it sooner.
                shutil.rmtree(root)
                shutil.rmtree(ckpt_dir, ignore_errors=True)
                kill_after /= 2
                status = zygote.run(_spec(root, ckpt_dir), kill_after=kill_after)
            if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
                failures.append(f"{root.name} {injection}: ended by itself (status {status})")
                continue
            tally[kind][0] += 1
            problems = _checkpoints_intact(ckpt_dir) + _logs_readable(root)
            lost = len(problems)

            final = root / "final.pt"
            status = zygote.run(_spec(root, ckpt_dir, ckpt_path="last", final=str(final)))
            if status != 0:
                problems.append(f"the resumed run failed (status {status})")
            else:
                got = torch.load(final, weights_only=True)
                if any(not torch.equal(got[key], value) for key, value in want.items()):
                    problems.append("final weights differ from the uninterrupted run's")
                    lost += 1
                listing, changed = _checkpoint_differences(ckpt_dir, reference_root / "ckpts")
                unreadable = _logs_readable(root)
                problems += listing + changed + unreadable
                lost += len(changed) + len(unreadable)
                problems += [f"left behind: {p}" for p in _temporary_files(ckpt_dir, root)]
                problems += [f"left in $TMPDIR: {p}" for p in (root / "tmp").iterdir()]
            tally[kind][2] += lost
            if problems:
                failures.append(f"{root.name} {injection}, kill after {kill_after}: {problems}")
            else:
                tally[kind][1] += 1
    finally:
        if shm is not None:
            shutil.rmtree(shm, ignore_errors=True)
    # The zygote lives on for the next test; every training process it forked must be gone.
    left = [p for p in leftover_processes() if not p.startswith(f"{zygote.process.pid} ")]
    for kind, (kills, recovered, lost) in tally.items():
        fault_report.record(
            f"{KINDS[kind]}, then resume",
            injections=kills,
            recovered=recovered,
            files_lost=lost,
            processes_left=len(left) if kind == "random" else 0,
        )
    print({KINDS[kind]: counts for kind, counts in tally.items()})
    assert not failures, "\n".join(failures)
    assert not left, left
    assert sum(counts[0] for counts in tally.values()) == len(KINDS) * TRIALS_PER_KIND
