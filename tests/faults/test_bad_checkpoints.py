"""Bad checkpoint files and checkpoints of the wrong model: a clear error, raised before any step.

Each bad file (empty, cut short at ten random places and just before its last byte, text, random bytes, a directory, a missing
path, a pickle whose unpickling would run code) is handed to every way of loading one:
`Model.load_from_checkpoint`, `Trainer.fit(ckpt_path=...)`, `Trainer.validate(ckpt_path=...)` and
`TorchCheckpointIO().load_checkpoint`. Each must raise a MisconfigurationException (or, for a path
that is no file, FileNotFoundError or IsADirectoryError) whose message names the path, run no code
from the file, take no training step, and leave the checkpoint folder exactly as it was.

The tests rely on public behaviour only, not on how fulmen verifies a checkpoint's integrity.
Then: checkpoints that load but do not fit the model (another class, missing or extra keys).
"""

from __future__ import annotations

import hashlib
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import fulmen
from fulmen.callbacks import Callback, ModelCheckpoint
from fulmen.demos.boring_classes import BoringModel
from fulmen.plugins import TorchCheckpointIO
from fulmen.utilities.exceptions import MisconfigurationException
from tests.faults.conftest import FaultReport

SEED = 20260808
TRUNCATIONS = 10
CLEAR_ERRORS = (MisconfigurationException, FileNotFoundError, IsADirectoryError)


def quiet_trainer(root: Path, **kwargs: Any) -> fulmen.Trainer:
    options: dict[str, Any] = {
        "default_root_dir": root,
        "max_steps": 2,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }
    options.update(kwargs)
    return fulmen.Trainer(**options)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a checkpoint a Trainer wrote after two steps of BoringModel."""
    root = tmp_path_factory.mktemp("good")
    trainer = quiet_trainer(root)
    trainer.fit(BoringModel())
    trainer.save_checkpoint(root / "good.ckpt")
    return (root / "good.ckpt").read_bytes()


class CodeRunningPayload:
    """Unpickling this runs code that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"with open({str(self.marker)!r}, 'w') as f: f.write('code ran')",))


def write_torch_payload(path: Path, marker: Path, good: bytes) -> None:
    """A real checkpoint with a code-running object among its hyperparameters."""
    source = path.with_suffix(".source")
    source.write_bytes(good)
    checkpoint = torch.load(source, weights_only=True)
    source.unlink()
    checkpoint["hyper_parameters"] = {"payload": CodeRunningPayload(marker)}
    torch.save(checkpoint, path)


def write_pickle_payload(path: Path, marker: Path, good: bytes) -> None:
    """A plain pickle (no zip container) of a dict holding a code-running object."""
    path.write_bytes(pickle.dumps({"state_dict": {}, "x": CodeRunningPayload(marker)}, protocol=2))


# Where to cut the good checkpoint, as fractions of its length (so the cases can be named before
# it exists); the last case drops only the final byte, the end of the zip's directory.
_RANDOM = random.Random(SEED)
CUT_FRACTIONS = sorted(_RANDOM.random() for _ in range(TRUNCATIONS))


def cut_point(name: str, size: int) -> int:
    fraction = name.removeprefix("cut-at-")
    return size - 1 if fraction == "last-byte" else max(1, int(float(fraction) * size))


def bad_files(good: bytes) -> dict[str, Callable[[Path, Path], object]]:
    """Name -> a function writing that bad file at `path` (code in it would create `marker`)."""
    makers: dict[str, Callable[[Path, Path], object]] = {
        "empty": lambda path, marker: path.write_bytes(b""),
        "text": lambda path, marker: path.write_text("epoch: 3\nweights: none of them\n"),
        "random-bytes": lambda path, marker: path.write_bytes(random.Random(SEED).randbytes(4096)),
        "directory": lambda path, marker: path.mkdir(),
        "missing": lambda path, marker: None,
        "torch-save-running-code": lambda path, marker: write_torch_payload(path, marker, good),
        "pickle-running-code": lambda path, marker: write_pickle_payload(path, marker, good),
        "not-a-dict": lambda path, marker: torch.save([1, 2, 3], path),
    }
    for name in [f"cut-at-{fraction:.4f}" for fraction in CUT_FRACTIONS] + ["cut-at-last-byte"]:
        makers[name] = truncated_writer(good[: cut_point(name, len(good))])
    return makers


def truncated_writer(data: bytes) -> Callable[[Path, Path], object]:
    return lambda path, marker: path.write_bytes(data)


CASES = list(bad_files(b"\0" * 100))


class StepCounting(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_start(self, *args: Any) -> None:
        self.steps += 1

    def on_validation_batch_start(self, *args: Any) -> None:
        self.steps += 1


def load_with_load_from_checkpoint(path: Path, folder: Path, counter: StepCounting) -> None:
    BoringModel.load_from_checkpoint(path)


def load_with_fit(path: Path, folder: Path, counter: StepCounting) -> None:
    # The run's own ModelCheckpoint saves into the folder of the bad file, every step.
    saving = ModelCheckpoint(dirpath=folder, every_n_train_steps=1, save_last=True)
    trainer = quiet_trainer(folder.parent, enable_checkpointing=True, callbacks=[saving, counter])
    trainer.fit(BoringModel(), ckpt_path=path)


def load_with_validate(path: Path, folder: Path, counter: StepCounting) -> None:
    quiet_trainer(folder.parent, callbacks=[counter]).validate(BoringModel(), ckpt_path=path)


def load_with_checkpoint_io(path: Path, folder: Path, counter: StepCounting) -> None:
    TorchCheckpointIO().load_checkpoint(path)


LOADERS = {
    "load_from_checkpoint": load_with_load_from_checkpoint,
    "fit": load_with_fit,
    "validate": load_with_validate,
    "TorchCheckpointIO": load_with_checkpoint_io,
}


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` with its content hash (or 'dir'): to compare before and after."""
    return {
        str(p.relative_to(folder)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("case", CASES)
def test_a_bad_checkpoint_file_is_refused_naming_it_and_changes_nothing(
    case: str,
    loader: str,
    good_checkpoint: bytes,
    tmp_path: Path,
    fault_report: FaultReport,
) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "good.ckpt").write_bytes(good_checkpoint)
    marker = tmp_path / "code-ran.txt"
    path = folder / "bad.ckpt"
    make = bad_files(good_checkpoint)[case]
    make(path, marker)
    before = snapshot(folder)
    counter = StepCounting()

    with pytest.raises(Exception) as info:
        LOADERS[loader](path, folder, counter)

    error = info.value
    checks = {
        "a clear error type": isinstance(error, CLEAR_ERRORS),
        "naming the file": str(path) in str(error),
        "no code from the file ran": not marker.exists(),
        # Loading unsafely is a fix only for a file that holds code the user trusts; for a
        # damaged file it would only expose them to whatever the bytes hold.
        "no advice to load unsafely": "running-code" in case
        or "weights_only=False" not in str(error),
        "no step taken": counter.steps == 0,
        "the folder unchanged": snapshot(folder) == before,
    }
    failed = [check for check, ok in checks.items() if not ok]
    fault_report.record(
        "bad checkpoint file",
        injections=1,
        recovered=int(not failed),
        files_lost=int(not checks["the folder unchanged"]),
    )
    assert failed == [], f"{type(error).__name__}: {error}"


def test_the_payloads_really_run_code_when_loaded_unsafely(
    good_checkpoint: bytes, tmp_path: Path
) -> None:
    # Without this, "no code ran" above could hold because the payload never works.
    torch_marker, pickle_marker = tmp_path / "torch.txt", tmp_path / "pickle.txt"
    write_torch_payload(tmp_path / "torch.ckpt", torch_marker, good_checkpoint)
    torch.load(tmp_path / "torch.ckpt", weights_only=False)
    assert torch_marker.read_text() == "code ran"
    write_pickle_payload(tmp_path / "pickle.ckpt", pickle_marker, good_checkpoint)
    pickle.loads((tmp_path / "pickle.ckpt").read_bytes())
    assert pickle_marker.read_text() == "code ran"


# ------------------------------------------------------------------ checkpoints of another model


class Wider(BoringModel):
    """Another LightningModule: its weights have other names and shapes than BoringModel's."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.head = torch.nn.Linear(2, width)


class Extended(BoringModel):
    """BoringModel plus one layer: BoringModel's checkpoints lack that layer's weights."""

    def __init__(self) -> None:
        super().__init__()
        self.extra = torch.nn.Linear(2, 2)


@pytest.fixture
def wider_checkpoint(tmp_path: Path) -> Path:
    trainer = quiet_trainer(tmp_path)
    trainer.fit(Wider())
    trainer.save_checkpoint(tmp_path / "wider.ckpt")
    return tmp_path / "wider.ckpt"


@pytest.fixture
def boring_checkpoint(good_checkpoint: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "boring.ckpt"
    path.write_bytes(good_checkpoint)
    return path


def test_load_from_checkpoint_of_another_class_lists_the_keys_and_names_the_file(
    boring_checkpoint: Path, fault_report: FaultReport
) -> None:
    with pytest.raises(RuntimeError) as info:
        Extended.load_from_checkpoint(boring_checkpoint)
    message = str(info.value)
    clear = str(boring_checkpoint) in message and "extra.weight" in message
    fault_report.record("bad checkpoint file", injections=1, recovered=int(clear))
    assert clear, message
    assert "strict=False" in message


def test_a_checkpoint_with_missing_and_unexpected_keys_is_refused_listing_both(
    wider_checkpoint: Path, fault_report: FaultReport
) -> None:
    class Narrow(BoringModel):
        def __init__(self) -> None:
            super().__init__()
            self.tail = torch.nn.Linear(2, 2)

    with pytest.raises(RuntimeError) as info:
        Narrow.load_from_checkpoint(wider_checkpoint, strict=True)
    message = str(info.value)
    listed = all(key in message for key in ("tail.weight", "tail.bias", "head.weight"))
    fault_report.record("bad checkpoint file", injections=1, recovered=int(listed))
    assert listed and str(wider_checkpoint) in message, message


def test_strict_false_loads_the_matching_keys_and_warns_which_were_missing_or_unused(
    wider_checkpoint: Path,
) -> None:
    class Narrow(BoringModel):
        def __init__(self) -> None:
            super().__init__()
            self.tail = torch.nn.Linear(2, 2)

    with pytest.warns(UserWarning) as record:
        model = Narrow.load_from_checkpoint(wider_checkpoint, strict=False)
    messages = [str(w.message) for w in record]
    assert any("'tail.weight', 'tail.bias'" in m and "initial values" in m for m in messages)
    assert any("'head.weight', 'head.bias'" in m and "not loaded" in m for m in messages)
    saved = torch.load(wider_checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(model.layer.weight, saved["layer.weight"])


@pytest.mark.parametrize("entry", ["fit", "validate"])
def test_resuming_from_a_checkpoint_of_another_class_fails_before_any_step_listing_the_keys(
    entry: str, wider_checkpoint: Path, tmp_path: Path, fault_report: FaultReport
) -> None:
    counter = StepCounting()
    trainer = quiet_trainer(tmp_path / "run", callbacks=[counter])
    with pytest.raises(RuntimeError) as info:
        if entry == "fit":
            trainer.fit(BoringModel(), ckpt_path=wider_checkpoint)
        else:
            trainer.validate(BoringModel(), ckpt_path=wider_checkpoint)
    message = str(info.value)
    clear = "head.weight" in message and "head.bias" in message and counter.steps == 0
    fault_report.record("bad checkpoint file", injections=1, recovered=int(clear))
    assert clear, message


def test_resuming_from_a_checkpoint_of_another_class_names_the_file(
    wider_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="wider.ckpt"):
        quiet_trainer(tmp_path / "run").fit(BoringModel(), ckpt_path=wider_checkpoint)
