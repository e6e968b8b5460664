"""An exception in user code: the user sees their own traceback, hooks run, nothing is left behind.

Each fault is raised in one place a user writes code: `training_step`, `validation_step`, a
callback hook, `configure_optimizers`, `train_dataloader()`, a DataLoader worker (raising, or
killed by SIGKILL), `LightningDataModule.setup`, and a Ctrl+C (a real SIGINT) during fit. For
each, in a process of its own, the test checks what the user sees and what is left:

- the exit status is non-zero, and stderr shows one traceback whose last frame is the user's
  raising line and whose last line is the user's exception, as a bare `raise` would show it:
  fulmen neither wraps it into another type nor chains anything after it;
- the callback's and the LightningModule's `on_exception` ran exactly once;
- the logger was finalized with status "failed" and its metrics.csv holds the rows logged before;
- no process is left: neither the DataLoader workers (they print their pids) nor anything else.

A killed worker has no traceback: torch's error names it, or fulmen's warning does when the
death surfaced as another error first. Ctrl+C ends the script by SIGINT after the graceful
shutdown: fulmen re-raises the KeyboardInterrupt, where Lightning 2.6.6 calls `sys.exit(1)`
(see tests/behaviour/test_trainer_runtime.py).

Starting Python and importing torch takes seconds, so one "zygote" process runs the user's script
once to warm up, then forks a fresh process per fault; each fork redirects its stdout and stderr
to files and lets the exception reach the interpreter's top level, as a user's script would.
In-process variants below check identity (`pytest.raises` gets the very object raised), that no
worker outlives a failed `fit` while the caller still holds the exception, and that a signal
during the shutdown (a second Ctrl+C, torch's SIGCHLD handler raising after a worker died) does
not cut it short.
"""

from __future__ import annotations

import csv
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import fulmen
from fulmen.loggers import CSVLogger
from tests.faults.conftest import FaultReport, leftover_processes

SCRIPT = r"""
import gc, os, signal, sys

import torch
from torch.utils.data import DataLoader, Dataset

import fulmen as pl
from fulmen.loggers import CSVLogger

torch.set_num_threads(1)  # forked processes must not inherit a thread pool
CASE = "warm-up"


class UserError(Exception):
    pass


def say(*words):
    print("@@" + " ".join(str(word) for word in words), flush=True)


class Numbers(Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, index):
        if index == 13 and CASE == "worker_raises":
            raise UserError("bad sample 13")  # raise:worker_raises
        if index == 21 and CASE == "worker_killed":
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.full((4,), float(index))


def loader():
    return DataLoader(
        Numbers(), batch_size=4, num_workers=2, worker_init_fn=lambda _: say("worker", os.getpid())
    )


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch).pow(2).mean()
        self.log("train_loss", loss)
        if batch_idx == 2 and CASE == "training_step":
            raise UserError("training_step failed at batch 2")  # raise:training_step
        if batch_idx == 2 and CASE == "sigint":
            signal.raise_signal(signal.SIGINT)  # raise:sigint
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.layer(batch).pow(2).mean())
        if batch_idx == 1 and CASE == "validation_step":
            raise UserError("validation_step failed at batch 1")  # raise:validation_step

    def configure_optimizers(self):
        if CASE == "configure_optimizers":
            raise UserError("configure_optimizers failed")  # raise:configure_optimizers
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        if CASE == "train_dataloader":
            raise UserError("train_dataloader failed")  # raise:train_dataloader
        return loader()

    def val_dataloader(self):
        return loader()

    def on_exception(self, exception):
        say("on_exception module", type(exception).__name__)


class Hooks(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == 1 and CASE == "on_train_batch_end":
            raise UserError("on_train_batch_end failed at batch 1")  # raise:on_train_batch_end

    def on_validation_epoch_end(self, trainer, pl_module):
        if CASE == "on_validation_epoch_end":
            raise UserError("on_validation_epoch_end failed")  # raise:on_validation_epoch_end

    def on_exception(self, trainer, pl_module, exception):
        say("on_exception callback", type(exception).__name__)


class Data(pl.LightningDataModule):
    def setup(self, stage):
        raise UserError("setup failed")  # raise:datamodule_setup

    def train_dataloader(self):
        return loader()

    def on_exception(self, exception):
        say("on_exception datamodule", type(exception).__name__)


class Logger(CSVLogger):
    def finalize(self, status):
        super().finalize(status)
        say("finalize", status)


def main(folder):
    trainer = pl.Trainer(
        default_root_dir=folder, max_epochs=1, logger=Logger(folder), log_every_n_steps=1,
        callbacks=[Hooks()], enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, num_sanity_val_steps=0,
    )
    trainer.fit(Model(), datamodule=Data() if CASE == "datamodule_setup" else None)


main(sys.argv[1])  # warm up every lazy import once, before forking
gc.freeze()  # or each fork's exit copies every page the collector touches (a second each)
say("zygote")
for line in sys.stdin:
    CASE, folder = line.split()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        signal.alarm(50)  # never outlive a test that died
        os.makedirs(folder, exist_ok=True)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(target, fd)
            os.close(target)
        main(folder)  # the user's exception leaves through the top level, as in a user's script
        sys.exit(0)  # no exception: the test reports the case as not raised
    _, status = os.waitpid(pid, 0)
    say("done", pid, status)
"""


@dataclass(frozen=True)
class Case:
    """Where the fault is raised and what the user must see."""

    function: str | None  # the user's raising function; None: not raised by user code
    last_line: str  # the last line of stderr (a regular expression)
    rows: int  # metrics.csv rows logged before the fault (a minimum)
    datamodule: bool = False


CASES = {
    "training_step": Case("training_step", "UserError: training_step failed at batch 2", 2),
    "validation_step": Case("validation_step", "UserError: validation_step failed at batch 1", 8),
    "on_train_batch_end": Case(
        "on_train_batch_end", "UserError: on_train_batch_end failed at batch 1", 1
    ),
    "on_validation_epoch_end": Case(
        "on_validation_epoch_end", "UserError: on_validation_epoch_end failed", 8
    ),
    "configure_optimizers": Case(
        "configure_optimizers", "UserError: configure_optimizers failed", 0
    ),
    "train_dataloader": Case("train_dataloader", "UserError: train_dataloader failed", 0),
    # torch re-raises a worker's exception in the main process with the worker's traceback in
    # its message, so the last lines are the user's frame and exception, as without fulmen.
    "worker_raises": Case("__getitem__", "UserError: bad sample 13", 3),
    # A killed worker leaves no traceback of its own: torch's error names the worker instead,
    # unless the worker died while handing over a batch (then the handover fails first).
    "worker_killed": Case(
        None,
        r"(RuntimeError): DataLoader worker \(pid(\(s\))? \d+\) "
        r"(exited unexpectedly|is killed by signal: Killed\.)"
        r"|(ConnectionResetError): \[Errno 104\] Connection reset by peer",
        0,
    ),
    "datamodule_setup": Case("setup", "UserError: setup failed", 0, datamodule=True),
    # Ctrl+C: the batch finishes, the run shuts down gracefully, then the interrupt reaches the
    # user's script, raised by the loop rather than where the signal arrived (see run.py).
    "sigint": Case(None, "(KeyboardInterrupt)", 2),
}


@dataclass
class Outcome:
    status: int  # as os.waitpid reports it
    stdout: str
    stderr: str
    folder: Path


class Zygote:
    """Talks to the zygote through its stdin and the `@@` lines of its stdout."""

    def __init__(self, script: Path, folder: Path) -> None:
        self.script = script
        self.errors = (folder / "zygote.err").open("w")
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, str(script), str(folder / "warm-up")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.expect("zygote", timeout=60)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("@@eof")

    def expect(self, word: str, timeout: float) -> list[str]:
        """Wait for the next `@@<word> ...` line; return its fields."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"the zygote sent no @@{word} in {timeout} s") from None
            fields = line.split()
            if fields and fields[0] == f"@@{word}":
                return fields[1:]
            if line == "@@eof":
                raise AssertionError(f"the zygote ended before @@{word}")

    def run(self, case: str, folder: Path) -> Outcome:
        """Fork a process for `case`; wait for it and return what it showed."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{case} {folder}\n")
        self.process.stdin.flush()
        _, status = self.expect("done", timeout=60)
        return Outcome(
            int(status), (folder / "stdout").read_text(), (folder / "stderr").read_text(), folder
        )

    def close(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.reader.join(timeout=10)
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.errors.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    folder = tmp_path_factory.mktemp("zygote")
    script = folder / "train_user.py"
    script.write_text(SCRIPT)
    started = Zygote(script, folder)
    try:
        yield started
    finally:
        started.close()
    assert leftover_processes() == []


def _marker_line(case: str) -> int:
    return next(
        number
        for number, line in enumerate(SCRIPT.splitlines(), start=1)
        if line.endswith(f"# raise:{case}")
    )


def _alive(pids: list[int], script: Path, timeout: float = 5.0) -> list[int]:
    """Those of `pids` still running the user's script after `timeout` seconds (zombies are gone)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE and str(script) in process.cmdline():
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _problems(case: str, expected: Case, outcome: Outcome, script: Path) -> list[str]:
    """Everything the user would see wrong after `case`; empty when the run failed cleanly."""
    problems = []
    stderr_lines = outcome.stderr.rstrip().splitlines()
    if case == "sigint":
        # Python ends a script that let KeyboardInterrupt through by SIGINT, as the shell expects.
        if not (os.WIFSIGNALED(outcome.status) and os.WTERMSIG(outcome.status) == signal.SIGINT):
            problems.append(f"wait status {outcome.status}, not 'killed by SIGINT'")
        if "Detected KeyboardInterrupt, attempting graceful shutdown" not in outcome.stderr:
            problems.append("no graceful-shutdown message")
    elif not (os.WIFEXITED(outcome.status) and os.WEXITSTATUS(outcome.status) == 1):
        problems.append(f"wait status {outcome.status}, not exit code 1")
    match = re.fullmatch(expected.last_line, stderr_lines[-1]) if stderr_lines else None
    if match is None:
        problems.append(f"last line of stderr is not {expected.last_line!r}")
    if expected.function is not None:
        headers = [line for line in stderr_lines if line.startswith("Traceback (most recent")]
        if len(headers) != 1:
            problems.append(f"{len(headers)} tracebacks printed, not 1")
        for noise in ("During handling of the above exception", "The above exception was"):
            if noise in outcome.stderr:
                problems.append(f"chained exception noise: {noise!r}")
        frames = [line.strip() for line in stderr_lines if line.startswith('  File "')]
        user_frame = f'File "{script}", line {_marker_line(case)}, in {expected.function}'
        if not frames or frames[-1] != user_frame:
            problems.append(f"the last frame is {frames[-1:]}, not {user_frame!r}")
    markers = [line[2:] for line in outcome.stdout.splitlines() if line.startswith("@@")]
    name = "KeyboardInterrupt" if case == "sigint" else "UserError"
    if match is not None and expected.function is None:
        name = match[1] or match[4]
    hooks = ["callback", "module"] + (["datamodule"] if expected.datamodule else [])
    for owner in hooks:
        ran = markers.count(f"on_exception {owner} {name}")
        if ran != 1:
            problems.append(f"on_exception of the {owner} ran {ran} times with {name}")
    if len([m for m in markers if m.startswith("on_exception")]) != len(hooks):
        problems.append(f"unexpected on_exception calls: {markers}")
    finalized = [m for m in markers if m.startswith("finalize")]
    if finalized != ["finalize failed"]:
        problems.append(f"logger finalized as {finalized}, not once as 'failed'")
    metrics = list(outcome.folder.glob("**/metrics.csv"))
    rows: list[dict[str, str]] = []
    if metrics:
        with metrics[0].open() as stream:
            rows = [row for row in csv.DictReader(stream) if row.get("train_loss")]
        for row in rows:
            try:
                float(row["train_loss"])
            except ValueError:
                problems.append(f"metrics.csv holds an unreadable value {row['train_loss']!r}")
    if len(rows) < expected.rows:
        problems.append(f"metrics.csv holds {len(rows)} train_loss rows, expected {expected.rows}")
    workers = [int(m.split()[1]) for m in markers if m.startswith("worker ")]
    named = {
        int(pid) for pid in re.findall(r"DataLoader worker \(pid(?:\(s\))? (\d+)\)", outcome.stderr)
    }
    if case == "worker_killed" and not named & set(workers):
        problems.append(f"stderr names none of the workers {workers}")
    return problems


@pytest.mark.parametrize("case", list(CASES))
def test_user_exception_reaches_the_user_unchanged_and_leaves_nothing_behind(
    case: str, zygote: Zygote, tmp_path: Path, fault_report: FaultReport
) -> None:
    expected = CASES[case]
    outcome = zygote.run(case, tmp_path / case)
    problems = _problems(case, expected, outcome, zygote.script)
    workers = [
        int(line.split()[1]) for line in outcome.stdout.splitlines() if line.startswith("@@worker")
    ]
    left = _alive(workers, zygote.script)
    left += [
        child.pid
        for child in psutil.Process(zygote.process.pid).children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE
    ]
    if left:
        problems.append(f"processes left: {left}")
    if case.startswith("worker") or case in ("training_step", "validation_step", "sigint"):
        assert workers, "the case was meant to run with DataLoader workers"
    fault_report.record(
        "exception in user code",
        injections=1,
        recovered=int(not problems),
        processes_left=len(left),
    )
    assert not problems, f"{case}:\n- " + "\n- ".join(problems) + f"\nstderr:\n{outcome.stderr}"


# ---------------------------------------------------------------------- in-process variants


class UserError(Exception):
    pass


TWO_EPOCHS: dict[str, Any] = dict(
    max_epochs=2,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
    num_sanity_val_steps=0,
)


class Numbers(Dataset[torch.Tensor]):
    def __init__(self, bad_index: int = -1) -> None:
        self.bad_index = bad_index

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == self.bad_index:
            raise UserError(f"bad sample {index}")
        return torch.full((4,), float(index))


def numbers(workers: int = 0, bad_index: int = -1, persistent: bool = False) -> DataLoader[Any]:
    return DataLoader(
        Numbers(bad_index), batch_size=4, num_workers=workers, persistent_workers=persistent
    )


class Failing(fulmen.LightningModule):
    """Raises `error` in the hook named `place`; counts its `on_exception` calls."""

    def __init__(self, place: str, error: BaseException, **loader_options: Any) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.place, self.error, self.loader_options = place, error, loader_options
        self.exceptions: list[BaseException] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if self.place == "training_step" and (self.current_epoch, batch_idx) == (1, 1):
            raise self.error
        loss: torch.Tensor = self.layer(batch).pow(2).mean()
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        if self.place == "validation_step" and batch_idx == 1:
            raise self.error

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.place == "configure_optimizers":
            raise self.error
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader[Any]:
        if self.place == "train_dataloader":
            raise self.error
        return numbers(**self.loader_options)

    def val_dataloader(self) -> DataLoader[Any]:
        return numbers(**{k: v for k, v in self.loader_options.items() if k != "bad_index"})

    def on_exception(self, exception: BaseException) -> None:
        self.exceptions.append(exception)


class FailingCallback(fulmen.Callback):
    def __init__(self, place: str, error: BaseException) -> None:
        self.place, self.error = place, error
        self.exceptions: list[BaseException] = []

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if self.place == "on_train_batch_end" and trainer.global_step == 3:
            raise self.error

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.place == "on_validation_epoch_end":
            raise self.error

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.exceptions.append(exception)


class FailingData(fulmen.LightningDataModule):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def setup(self, stage: str) -> None:
        raise self.error

    def train_dataloader(self) -> DataLoader[Any]:
        return numbers()


IN_PROCESS_PLACES = {
    "training_step": "training_step",
    "validation_step": "validation_step",
    "on_train_batch_end": "on_train_batch_end",
    "on_validation_epoch_end": "on_validation_epoch_end",
    "configure_optimizers": "configure_optimizers",
    "train_dataloader": "train_dataloader",
    "datamodule_setup": "setup",
}


@pytest.mark.parametrize("place", list(IN_PROCESS_PLACES))
def test_fit_raises_the_very_exception_object_with_the_user_frame(
    place: str, tmp_path: Path
) -> None:
    error = UserError(f"{place} failed")
    model = Failing(place, error)
    callback = FailingCallback(place, error)
    datamodule = FailingData(error) if place == "datamodule_setup" else None
    trainer = fulmen.Trainer(default_root_dir=tmp_path, callbacks=[callback], **TWO_EPOCHS)
    with pytest.raises(UserError) as info:
        trainer.fit(model, datamodule=datamodule)
    assert info.value is error
    assert info.value.__cause__ is None and info.value.__context__ is None
    last = info.traceback[-1]
    assert (Path(str(last.path)), last.name) == (Path(__file__), IN_PROCESS_PLACES[place])
    assert model.exceptions == [error] and callback.exceptions == [error]
    assert trainer.interrupted and trainer.state.status == "interrupted"


def _children() -> set[int]:
    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE
    }


def _new_children(before: set[int], timeout: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (new := _children() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return new


def test_no_worker_outlives_a_worker_failure_while_the_exception_is_held(tmp_path: Path) -> None:
    before = _children()
    model = Failing("nowhere", UserError("unused"), workers=2, bad_index=9)
    trainer = fulmen.Trainer(default_root_dir=tmp_path, **TWO_EPOCHS)
    with pytest.raises(UserError, match="bad sample 9") as info:
        trainer.fit(model)
    # torch re-raises the worker's exception with the worker's traceback in its message.
    assert f'File "{__file__}"' in str(info.value) and "in __getitem__" in str(info.value)
    # `info` keeps the traceback, and with it the failed iteration's frames, alive.
    assert _new_children(before) == set()
    assert len(model.exceptions) == 1 and model.exceptions[0] is info.value


def test_no_persistent_worker_outlives_a_failed_fit(tmp_path: Path) -> None:
    before = _children()
    # Validation in epoch 0 starts persistent workers; training_step fails in epoch 1.
    model = Failing("training_step", UserError("late"), workers=2, persistent=True)
    trainer = fulmen.Trainer(default_root_dir=tmp_path, **TWO_EPOCHS)
    with pytest.raises(UserError, match="late"):
        trainer.fit(model)
    assert _new_children(before) == set()


def test_no_persistent_worker_outlives_a_finished_fit(tmp_path: Path) -> None:
    before = _children()
    trainer = fulmen.Trainer(default_root_dir=tmp_path, **TWO_EPOCHS)
    trainer.fit(Failing("nowhere", UserError("unused"), workers=2, persistent=True))
    assert trainer.state.status == "finished"
    assert _new_children(before) == set()


class InterruptedTwice(fulmen.Callback):
    """Presses Ctrl+C again while the first one is being handled."""

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        signal.raise_signal(signal.SIGINT)


class RecordingLogger(CSVLogger):
    def __init__(self, root: Path, seen: list[str]) -> None:
        super().__init__(root)
        self.seen = seen

    def finalize(self, status: str) -> None:
        super().finalize(status)
        self.seen.append(status)


def test_second_ctrl_c_does_not_cut_the_graceful_shutdown_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    interrupt = KeyboardInterrupt()
    finalized: list[str] = []
    handler = signal.getsignal(signal.SIGINT)
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        callbacks=[InterruptedTwice()],
        **{**TWO_EPOCHS, "logger": RecordingLogger(tmp_path, finalized)},
    )
    raised: BaseException | None = None
    try:
        trainer.fit(Failing("training_step", interrupt, workers=2, persistent=True))
    except KeyboardInterrupt as caught:
        raised = caught
    assert raised is interrupt
    assert finalized == ["failed"]
    assert trainer.interrupted
    assert signal.getsignal(signal.SIGINT) is handler
    assert "Detected KeyboardInterrupt, attempting graceful shutdown" in caplog.text


class ChildSignalDuringShutdown(fulmen.Callback):
    """Makes a SIGCHLD arrive while `on_exception` runs, as a DataLoader worker's death does."""

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        signal.raise_signal(signal.SIGCHLD)


def test_a_raising_child_signal_handler_does_not_cut_the_shutdown_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # torch's SIGCHLD handler raises like this one when a worker died.
    def worker_died(signum: int, frame: Any) -> None:
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed.")

    error = UserError("late")
    model = Failing("training_step", error)
    finalized: list[str] = []
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        callbacks=[ChildSignalDuringShutdown()],
        **{**TWO_EPOCHS, "logger": RecordingLogger(tmp_path, finalized)},
    )
    previous = signal.signal(signal.SIGCHLD, worker_died)
    try:
        with pytest.raises(UserError) as info:
            trainer.fit(model)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert info.value is error
    assert model.exceptions == [error] and finalized == ["failed"]
    assert "a signal handler raised RuntimeError('DataLoader worker (pid 4242)" in caplog.text
